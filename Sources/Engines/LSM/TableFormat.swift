// Sorted table files (".sst"):
//
//     data block 0 .. data block n-1    (~4 KiB each; see Block.swift), each + CRC-32C
//     filter block                      (BloomFilter over user keys; empty in tables written for
//                                        the bottom level, see TableBuilder.init) + CRC-32C
//     index block                       (key: a separator >= the last internal key of data block i
//                                        and < the first of block i+1 (IndexSeparator.swift);
//                                        value: handle) + CRC-32C
//     footer (48 bytes):
//         indexOffset u64, indexSize u64, filterOffset u64, filterSize u64,
//         formatVersion u32, crc32c of the preceding 36 bytes u32, magic u64
//
// Footer, filter and index are checked when the table is opened, each data block against its CRC
// the first time it is read after that (Table.swift); a mismatch is `.corruption` naming the file
// and the block's offset, never data. A table of another format version is refused when opened,
// naming the file and the footer's offset.
//
// Format versions: 1 stored whole 8-byte trailers in block keys, restart keys shared nothing and
// restart offsets were UInt32, index keys were the blocks' last keys; 2 (this one) codes
// sequence numbers as varint deltas, restart keys against the block's first key, 16-bit restart
// offsets in blocks under 64 KiB and short index separators (Block.swift).

enum TableFormat {
    static let footerSize = 48
    static let magic: UInt64 = 0x7275_7364_4C53_4D31 // "rusdLSM1"
    static let formatVersion: UInt32 = 2
    static let blockSize = 4096
}
