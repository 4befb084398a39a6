print("engine-kill-writer: not built yet")
