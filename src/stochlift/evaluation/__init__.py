"""Evaluation of models and files: metrics (stochlift.metrics) applied through each problem's knowledge
(stochlift.problems) to generated trajectory files, and to models rolled out (forecasting, the BAIR video
protocol)."""
