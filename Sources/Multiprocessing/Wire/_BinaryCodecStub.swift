// TEMPORARY stub until the real codec lands.
enum BinaryCodec {
    static func encode<T: Encodable>(_ value: T, into writer: inout ByteWriter) throws(MultiprocessingError) { fatalError() }
    static func decode<T: Decodable>(_ type: T.Type, from reader: inout ByteReader) throws(MultiprocessingError) -> T { fatalError() }
}
