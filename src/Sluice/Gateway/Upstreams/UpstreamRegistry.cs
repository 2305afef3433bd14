namespace Sluice.Gateway;

/// <summary>
/// The <see cref="IUpstream"/> for each provider kind, from every implementation registered in the container
/// (<c>services.AddSingleton&lt;IUpstream, MyUpstream&gt;()</c>): a new kind of target is one new class, not a new branch
/// in the pipeline. Looked up by array index, so choosing one costs nothing per request.
/// </summary>
public sealed class UpstreamRegistry
{
    private readonly IUpstream?[] _byKind;

    public UpstreamRegistry(IEnumerable<IUpstream> upstreams)
    {
        _byKind = new IUpstream?[Enum.GetValues<ProviderKind>().Length];
        foreach (var upstream in upstreams)
        {
            var slot = (int)upstream.Kind;
            if (_byKind[slot] is { } existing)
            {
                throw new InvalidOperationException($"Two upstreams serve provider kind {upstream.Kind}: {existing.GetType().Name} and {upstream.GetType().Name}.");
            }

            _byKind[slot] = upstream;
        }
    }

    public IUpstream For(ProviderKind kind) =>
        (uint)kind < (uint)_byKind.Length && _byKind[(int)kind] is { } upstream
            ? upstream
            : throw new InvalidOperationException($"No upstream is registered for provider kind {kind}.");
}
