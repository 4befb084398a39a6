// EtcdServer: under construction (see the open issues).
