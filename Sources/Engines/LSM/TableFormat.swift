// Sorted table files (".sst"):
//
//     data block 0 .. data block n-1    (~4 KiB each; see Block.swift), each + CRC-32C
//     filter block                      (BloomFilter over user keys) + CRC-32C
//     index block                       (key: last internal key of data block i, value: handle) + CRC-32C
//     footer (48 bytes):
//         indexOffset u64, indexSize u64, filterOffset u64, filterSize u64,
//         formatVersion u32, crc32c of the preceding 36 bytes u32, magic u64
//
// Footer, filter and index are checked when the table is opened, each data block against its CRC
// the first time it is read after that (Table.swift); a mismatch is `.corruption` naming the file
// and the block's offset, never data. The restart interval of blocks is the writer's choice
// (readers follow the restart array), so format version 1 covers tables written before and
// after restart points also every 1 KiB.

enum TableFormat {
    static let footerSize = 48
    static let magic: UInt64 = 0x7275_7364_4C53_4D31 // "rusdLSM1"
    static let formatVersion: UInt32 = 1
    static let blockSize = 4096
}
