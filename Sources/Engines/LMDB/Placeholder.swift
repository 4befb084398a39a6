// LMDBEngine: under construction (see the open issues).
