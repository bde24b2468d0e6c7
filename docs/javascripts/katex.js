// Render the formulas that pymdownx.arithmatex (generic mode) wraps as
// \( ... \) and \[ ... \], with the KaTeX files shipped in assets/katex/
// (no network needed). document$ re-runs this after instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
