import ArgumentParser
import Tapedeck

/// The route options of the commands that create their routes (`proxy`, `record`, `run`): ``RouteOptions`` and
/// `--name` for the single route the flags give.
struct NamedRouteOptions: ParsableArguments {
    @OptionGroup var routes: RouteOptions

    @Option(help: ArgumentHelp("Name of the single route, used in logs and output.", valueName: "name"))
    var name: String = Route.defaultName

    /// The routes, checked for what `mode` needs (see ``RouteOptions/configuration(name:for:missingUpstream:)``).
    func configuration(
        for mode: TapedeckMode,
        missingUpstream: String = "missing --upstream (or --config FILE)"
    ) throws -> ProxyConfiguration {
        try routes.configuration(name: name, for: mode, missingUpstream: missingUpstream)
    }
}
