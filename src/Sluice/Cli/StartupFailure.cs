using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using Sluice.Storage;

namespace Sluice.Cli;

/// <summary>Turns a failure to start into one or a few plain lines: what is wrong and what to do, never a stack trace.</summary>
internal static partial class StartupFailure
{
    public static void Report(Exception exception, TextWriter error)
    {
        foreach (var line in Describe(exception))
        {
            error.WriteLine($"error: {line}");
        }

        error.Flush();
    }

    public static IEnumerable<string> Describe(Exception exception)
    {
        if (exception is AggregateException aggregate)
        {
            return aggregate.Flatten().InnerExceptions.SelectMany(Describe).Distinct();
        }

        switch (exception)
        {
            case OptionsValidationException validation:
                return validation.Failures.Select(f => $"invalid setting {f}");
            case InvalidOperationException when exception.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal):
                return [$"invalid setting: {FirstLine(exception.Message)}"];
            case DatabaseConfigurationException or DatabaseUnavailableException or SchemaTooNewException or SchemaNotCurrentException:
                return [exception.Message];
            case IOException when exception.InnerException is AddressInUseException || IsAddressInUse(exception):
                return [AddressInUse(exception.Message)];
            case FileNotFoundException or UnauthorizedAccessException:
                return [FirstLine(exception.Message)];
            default:
                return [$"sluice could not start: {exception.GetType().Name}: {FirstLine(exception.Message)}"];
        }
    }

    private static bool IsAddressInUse(Exception exception) =>
        exception.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse };

    private static string AddressInUse(string message)
    {
        var match = BindFailure().Match(message);
        if (match.Success && Uri.TryCreate(match.Groups["url"].Value, UriKind.Absolute, out var uri))
        {
            return $"cannot listen on {uri.Host}:{uri.Port}: port {uri.Port} is already in use. " +
                "Stop the other process or choose another address with --urls.";
        }

        return $"cannot listen: {FirstLine(message)}. Choose another address with --urls.";
    }

    private static string FirstLine(string message)
    {
        var newline = message.IndexOfAny(['\r', '\n']);
        return (newline < 0 ? message : message[..newline]).TrimEnd('.');
    }

    [GeneratedRegex(@"bind to address (?<url>\S+?):? address already in use", RegexOptions.IgnoreCase)]
    private static partial Regex BindFailure();
}
