// LSMTests
