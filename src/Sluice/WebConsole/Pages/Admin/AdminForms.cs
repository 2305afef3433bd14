using Microsoft.AspNetCore.Mvc.ModelBinding;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>Helpers for operator pages that hold several forms whose fields the API names alike.</summary>
internal static class AdminForms
{
    /// <summary>
    /// Moves the errors a service gave under its API field names (<c>baseUrl</c>) to the form's own properties
    /// (<c>EditBaseUrl</c>), so they show beside the field the person typed in.
    /// </summary>
    public static void Remap(ModelStateDictionary state, params (string From, string To)[] fields)
    {
        foreach (var (from, to) in fields)
        {
            var key = state.Keys.FirstOrDefault(k => string.Equals(k, from, StringComparison.OrdinalIgnoreCase) && !string.Equals(k, to, StringComparison.Ordinal));
            if (key is null || state[key] is not { } entry || entry.Errors.Count == 0)
            {
                continue;
            }

            foreach (var failure in entry.Errors.ToList())
            {
                state.AddModelError(to, failure.ErrorMessage);
            }

            entry.Errors.Clear();
            entry.ValidationState = ModelValidationState.Valid;
        }
    }
}
