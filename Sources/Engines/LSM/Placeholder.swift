// LSMEngine: under construction (see the open issues).
