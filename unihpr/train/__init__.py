"""Training pipeline of unihpr."""
