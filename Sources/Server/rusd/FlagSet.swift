// Command-line flags parsed the way etcd's (Go's `flag` package) are, so that scripts and unit
// files written for etcd work unchanged:
//   -name value, --name value, -name=value, --name=value; booleans as --flag or --flag=true|false;
//   every flag can also come from the environment as ETCD_<NAME> (dashes → underscores, upper
//   case); a flag on the command line wins over its variable.
// Unknown flags are an error ("flag provided but not defined: -x"), as in etcd.

/// One declared flag.
struct FlagSpec: Sendable {
    enum Kind: Sendable { case string, bool }
    let name: String
    let kind: Kind
    let defaultValue: String
    let usage: String

    var environmentName: String {
        "ETCD_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
    }
}

/// The outcome of parsing: a value for every declared flag plus the positional arguments.
struct ParsedFlags: Sendable {
    private(set) var values: [String: String]
    /// Names set explicitly (command line or environment), for "was it given?" questions.
    private(set) var explicitlySet: Set<String>
    private(set) var positional: [String]
    /// Environment variables ignored because the command line also set the flag.
    private(set) var shadowedEnvironment: [String]

    init(values: [String: String], explicitlySet: Set<String>, positional: [String], shadowedEnvironment: [String]) {
        self.values = values
        self.explicitlySet = explicitlySet
        self.positional = positional
        self.shadowedEnvironment = shadowedEnvironment
    }

    func string(_ name: String) -> String { values[name] ?? "" }

    func bool(_ name: String) -> Bool { values[name] == "true" }

    func isSet(_ name: String) -> Bool { explicitlySet.contains(name) }
}

struct FlagError: Error, CustomStringConvertible {
    let description: String
}

/// A declared set of flags.
struct FlagSet: Sendable {
    let specs: [FlagSpec]

    func spec(_ name: String) -> FlagSpec? { specs.first { $0.name == name } }

    /// Parses `arguments` (without the program name) and `environment`.
    func parse(_ arguments: [String], environment: [String: String]) throws -> ParsedFlags {
        var values: [String: String] = [:]
        for spec in specs { values[spec.name] = spec.defaultValue }
        var explicit = Set<String>()
        var positional: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                positional.append(contentsOf: arguments[index...])
                break
            }
            guard argument.hasPrefix("-"), argument != "-" else {
                positional.append(argument)
                continue
            }
            var body = argument.dropFirst()
            if body.hasPrefix("-") { body = body.dropFirst() }
            let name: String
            var inlineValue: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                inlineValue = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
            }
            guard let spec = spec(name) else {
                throw FlagError(description: "flag provided but not defined: -\(name)")
            }
            switch spec.kind {
            case .bool:
                let value = inlineValue ?? "true"
                guard let parsed = Self.parseBool(value) else {
                    throw FlagError(description: "invalid boolean value \"\(value)\" for -\(name): parse error")
                }
                values[name] = parsed ? "true" : "false"
            case .string:
                if let inlineValue {
                    values[name] = inlineValue
                } else {
                    guard index < arguments.count else {
                        throw FlagError(description: "flag needs an argument: -\(name)")
                    }
                    values[name] = arguments[index]
                    index += 1
                }
            }
            explicit.insert(name)
        }
        var shadowed: [String] = []
        for spec in specs {
            guard let envValue = environment[spec.environmentName] else { continue }
            if explicit.contains(spec.name) {
                shadowed.append(spec.environmentName)
                continue
            }
            switch spec.kind {
            case .bool:
                guard let parsed = Self.parseBool(envValue) else {
                    throw FlagError(description: "invalid value \"\(envValue)\" for \(spec.environmentName): parse error")
                }
                values[spec.name] = parsed ? "true" : "false"
            case .string:
                values[spec.name] = envValue
            }
            explicit.insert(spec.name)
        }
        return ParsedFlags(values: values, explicitlySet: explicit, positional: positional, shadowedEnvironment: shadowed)
    }

    /// Go's strconv.ParseBool.
    static func parseBool(_ s: String) -> Bool? {
        switch s {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: return nil
        }
    }

    /// The usage text: every flag with its default and meaning.
    func usage(program: String) -> String {
        var lines = ["usage: \(program) [flags]", "", "flags (each also read from ETCD_<FLAG> in the environment):"]
        for spec in specs {
            let def = spec.kind == .bool ? "" : " (default \"\(spec.defaultValue)\")"
            lines.append("  --\(spec.name)\(spec.kind == .bool ? "" : " value")")
            lines.append("        \(spec.usage)\(def)")
        }
        return lines.joined(separator: "\n")
    }
}
