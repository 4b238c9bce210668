// Foundation's `Data` on the raw-bytes path of the binary codec: an element count, then the
// bytes, read back with one copy. Those are the bytes `Data.encode(to:)` produces through
// the codec's unkeyed container (a count, then one byte per `UInt8`), and the bytes of a
// `[UInt8]`, so `Data` and `[UInt8]` decode as each other. Without this, each byte went
// through the unkeyed container on its own: a 10 MB `Data` took about 20 times as long as
// a 10 MB `[UInt8]`.
//
// `Data` lives in FoundationEssentials, which the library already links (ResultsFile.swift),
// so this costs no start-up time.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Data: _BinaryEncodingFastPath, _BinaryDecodingFastPath, _PODArrayCodable {
    static func _podWithMemory<V, R>(_ value: V, _ body: (Int, UnsafeRawBufferPointer) -> R) -> R {
        let data = binaryIdentityCast(value, to: Data.self)
        return data.withUnsafeBytes { body(data.count, $0) }
    }

    static func _podEncodedByteCount<V>(_ value: V) -> Int {
        PODArrayCoding.encodedByteCount(count: binaryIdentityCast(value, to: Data.self).count, of: UInt8.self)
    }

    static func _podEncode<V>(_ value: V, into writer: inout ByteWriter) {
        let data = binaryIdentityCast(value, to: Data.self)
        data.withUnsafeBytes { PODArrayCoding.write(count: data.count, $0, of: UInt8.self, into: &writer) }
    }

    static func _podDecode<R>(from reader: inout ByteReader, as type: R.Type) throws(MultiprocessingError) -> R {
        let (_, bytes) = try PODArrayCoding.readRaw(of: UInt8.self, from: &reader)
        return binaryIdentityCast(Data(bytes), to: R.self)
    }
}
