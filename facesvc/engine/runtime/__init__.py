"""Where model files come from and how instances are shared: weights, pools, optional packages."""
