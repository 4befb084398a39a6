// LevelDBEngine: under construction (see the open issues).
