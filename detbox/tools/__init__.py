"""Tools around a trained detector: log analysis, FLOPs, publishing, ONNX export, benchmarks,
environment reports and evaluation plots. Each module backs one ``detbox`` subcommand and is
usable from Python on its own."""
