"""The applications built on the library: ``unihpr demo`` and its companions.

Nothing in the library imports this package; it imports the library.

* [`unihpr.demo.run`][]: ``unihpr demo``, the paper's stages on the
  bundled motion-capture clips, scored next to the reference rows;
* [`unihpr.demo.ablation`][]: the paper's Table V on the same data;
* [`unihpr.demo.baselines`][]: the reference rows, a SimpleBaseline MLP
  lifter and the mean training pose;
* [`unihpr.demo.figures`][]: the demo's and the benchmarks' figures.

A new row of the demo (another model trained on the same data) is a function
that trains it in its own folder under the run folder and scores it with
[`pose_errors`][unihpr.evaluation.pose_errors], like the MLP lifter in
[`run_demo`][unihpr.demo.run.run_demo].
"""
