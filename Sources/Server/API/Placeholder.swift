// EtcdAPI: under construction (see the open issues).
