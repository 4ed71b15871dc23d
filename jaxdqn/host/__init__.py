"""On the host, between compiled chunks: the run driver (run folders, fit and resume),
checkpoints, metric files and the progress line, devices, processes and memory, sweeps,
export, plots, the settings JAX needs before it starts, and the command line. Nothing
here runs inside the compiled program."""
