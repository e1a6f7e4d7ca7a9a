import Foundation
import FuzzSupport

@testable import Tapedeck

/// libFuzzer's entry point: the bytes as an address for `Endpoint(parsing:)`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runHarness(start, count) { ParserFuzzing.endpoint($0) }
}
