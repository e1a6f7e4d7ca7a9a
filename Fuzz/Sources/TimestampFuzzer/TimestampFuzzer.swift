import Foundation
import FuzzSupport

@testable import Tapedeck

/// libFuzzer's entry point: the bytes as a time for `TimestampText.parse` (`sessions --since`).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    runHarness(start, count) { ParserFuzzing.timestamp($0) }
}
