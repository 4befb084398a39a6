// MVCCTests
