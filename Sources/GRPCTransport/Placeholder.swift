// GRPCTransport: under construction (see the open issues).
