import Logging
import Tapedeck

extension Deck.Options {
    /// The options the test helpers use unless given others: logging at warning level, so a passing test
    /// prints nothing while a replay mismatch is still logged the moment it happens.
    public static var testDefaults: Deck.Options {
        var options = Deck.Options()
        options.logger.logLevel = .warning
        return options
    }
}
