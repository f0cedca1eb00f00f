"""The Open Inference Protocol's gRPC messages and service: the .proto and the modules generated from it."""
