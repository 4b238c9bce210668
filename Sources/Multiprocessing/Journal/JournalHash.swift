/// XXH64 (xxHash, 64-bit): the journal's record checksum and the hash of each item's
/// encoded input and of a function's encoded state.
///
/// Written here to add no dependency. Not cryptographic: it detects torn and corrupt
/// records and changed inputs, not an adversary. Chosen over CRC32C (no hardware
/// instruction reachable from Swift without a C target, and a table-driven one runs at
/// about 1 GB/s) and over swift-crypto's SHA-256 (a few hundred MB/s to 2 GB/s): XXH64
/// hashes several GB/s in a release build, so checksumming the results and hashing
/// 1 MiB inputs stays a small part of a map (see the README's measured costs).
enum JournalHash {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always)
    private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always)
    private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always)
    private static func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    /// The XXH64 hash of `bytes` with `seed`.
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let count = bytes.count
        var offset = 0
        var h: UInt64
        @inline(__always) func load64(_ at: Int) -> UInt64 {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        if count >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            while offset + 32 <= count {
                v1 = round(v1, load64(offset))
                v2 = round(v2, load64(offset + 8))
                v3 = round(v3, load64(offset + 16))
                v4 = round(v4, load64(offset + 24))
                offset += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1)
            h = merge(h, v2)
            h = merge(h, v3)
            h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(count)
        while offset + 8 <= count {
            h ^= round(0, load64(offset))
            h = rotl(h, 27) &* p1 &+ p4
            offset += 8
        }
        if offset + 4 <= count {
            let k = UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            h ^= k &* p1
            h = rotl(h, 23) &* p2 &+ p3
            offset += 4
        }
        while offset < count {
            h ^= UInt64(bytes[offset]) &* p5
            h = rotl(h, 11) &* p1
            offset += 1
        }
        return avalanche(h)
    }

    @inline(__always)
    private static func avalanche(_ value: UInt64) -> UInt64 {
        var h = value
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }

    /// The XXH64 hash (seed 0) of the 8 little-endian bytes of `value`: the same as
    /// `hash` of those bytes, without its length tests (an `Int` or `Double` input is
    /// hashed once per item, on the supervisor's loop thread).
    @inline(__always)
    static func hash8(_ value: UInt64) -> UInt64 {
        var h = p5 &+ 8
        h ^= round(0, value)
        h = rotl(h, 27) &* p1 &+ p4
        return avalanche(h)
    }

    /// The hash of a byte array.
    static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }
}

/// Hashes items' encoded inputs one at a time, reusing one buffer: the hash of an item is
/// ``JournalHash`` of exactly the bytes the binary codec writes for it alone, except for
/// arrays of fixed-width numbers and `Data` (``_PODArrayCodable``), whose element memory is
/// hashed where it lies, with the element count as the seed: no copy of a large input.
struct InputHasher<Input: Encodable> {
    private var writer = ByteWriter(reservingCapacity: 256)
    private let pod = Input.self as? any _PODArrayCodable.Type
    /// The byte size of `Input` when the codec writes its value as its own memory
    /// (fixed-width integers and floating-point numbers, little-endian): those are hashed
    /// straight from memory, without the codec (measured: about 200 ns an item through the
    /// generic encoder, a few ns this way).
    private let rawSize: Int?

    init() {
        var raw: Int?
        #if _endian(little)
        if let primitive = BinaryPrimitive(Input.self), primitive != .string, primitive != .bool {
            raw = MemoryLayout<Input>.size
        }
        #endif
        rawSize = raw
    }

    /// The hashes of `inputs`, in order, appended to `hashes`.
    mutating func hash(_ inputs: ArraySlice<Input>, into hashes: inout [UInt64]) {
        if let size = rawSize, MemoryLayout<Input>.stride == size {
            if size == 8 {
                hashes.reserveCapacity(hashes.count + inputs.count)
                inputs.withUnsafeBytes { raw in
                    for offset in stride(from: 0, to: raw.count, by: 8) {
                        hashes.append(
                            JournalHash.hash8(
                                UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))))
                    }
                }
                return
            }
            inputs.withUnsafeBytes { raw in
                for offset in stride(from: 0, to: raw.count, by: size) {
                    hashes.append(JournalHash.hash(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + size)])))
                }
            }
            return
        }
        for input in inputs { hashes.append((try? hash(input)) ?? 0) }
    }

    /// The hash of `input`'s encoding.
    /// - Throws: ``MultiprocessingError/Code/encodingFailed`` when the input cannot be encoded.
    mutating func hash(_ input: Input) throws(MultiprocessingError) -> UInt64 {
        if let size = rawSize {
            return withUnsafeBytes(of: input) { JournalHash.hash(UnsafeRawBufferPointer(rebasing: $0.prefix(size))) }
        }
        if let pod {
            return pod._podWithMemory(input) { count, bytes in JournalHash.hash(bytes, seed: UInt64(count)) }
        }
        writer.bytes.removeAll(keepingCapacity: true)
        try BinaryCodec.encode(input, into: &writer)
        return writer.bytes.withUnsafeBytes { JournalHash.hash($0) }
    }
}
