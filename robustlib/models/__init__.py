"""One module per paper (mfbm, rbfi, dam, abs, bang) plus shared baselines."""
