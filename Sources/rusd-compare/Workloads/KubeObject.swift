import Foundation

/// A Kubernetes-looking object: JSON of about `size` bytes.
func kubeObject(kind: String, name: String, generation: Int, size: Int = 1_200) -> [UInt8] {
    let head = "{\"kind\":\"\(kind)\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"\(name)\",\"generation\":\(generation),\"uid\":\"\(UUID().uuidString)\"},\"spec\":{\"data\":\""
    let tail = "\"}}"
    let filler = max(0, size - head.utf8.count - tail.utf8.count)
    return Array((head + String(repeating: "x", count: filler) + tail).utf8)
}
