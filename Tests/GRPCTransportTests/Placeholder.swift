// GRPCTransportTests
