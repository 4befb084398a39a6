// EtcdProto: under construction (see the open issues).
