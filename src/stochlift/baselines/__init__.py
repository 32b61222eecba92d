"""Baselines the paper compares against: the autoregressive conditional diffusion model (ARDM) and the
explicit interpolating map of Appendix B. The deterministic regressor is the lifted model with d = 0."""
