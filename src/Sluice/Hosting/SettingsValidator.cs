using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Sluice.Hosting;

/// <summary>
/// Validates an options record with its data annotations and reports each failure as
/// <c>Section:Setting: what is wrong</c>, so a bad value at start names the setting to fix.
/// </summary>
internal sealed class SettingsValidator<TOptions>(string section) : IValidateOptions<TOptions>
    where TOptions : class
{
    public ValidateOptionsResult Validate(string? name, TOptions options)
    {
        var failures = Failures(section, options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    public static List<string> Failures(string section, TOptions options)
    {
        var context = new ValidationContext(options);
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(options, context, results, validateAllProperties: true);
        if (options is IValidatableObject validatable && results.Count > 0)
        {
            // The validator skips whole-object rules once a property fails; report every problem at once instead.
            results.AddRange(validatable.Validate(context));
        }

        return results
            .Select(r => $"{section}:{string.Join(",", r.MemberNames.DefaultIfEmpty("(section)"))}: {r.ErrorMessage}")
            .ToList();
    }

    /// <summary>Binds and validates a section eagerly, for the few settings needed before the host is built.</summary>
    public static TOptions BindNow(IConfiguration configuration, string section, Func<TOptions> defaults)
    {
        var options = defaults();
        configuration.GetSection(section).Bind(options);
        var failures = Failures(section, options);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(section, typeof(TOptions), failures);
        }

        return options;
    }
}

internal static class SettingsServiceCollectionExtensions
{
    /// <summary>Binds <typeparamref name="TOptions"/> to <paramref name="section"/> and validates it when the host starts.</summary>
    public static OptionsBuilder<TOptions> AddSettings<TOptions>(this IServiceCollection services, string section)
        where TOptions : class
    {
        services.AddSingleton<IValidateOptions<TOptions>>(new SettingsValidator<TOptions>(section));
        return services.AddOptions<TOptions>().BindConfiguration(section).ValidateOnStart();
    }
}
