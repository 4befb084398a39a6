// MVCC: under construction (see the open issues).
