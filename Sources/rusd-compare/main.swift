print("rusd-compare: not built yet")
