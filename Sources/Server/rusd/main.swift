print("rusd: not built yet")
