"""Training: Lightning modules for SR (L1/MSE, SRGAN), the fit driver, the LR sweep."""
