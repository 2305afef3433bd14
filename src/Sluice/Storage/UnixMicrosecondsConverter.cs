using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Sluice.Storage;

/// <summary>Stores a <see cref="DateTimeOffset"/> as UTC microseconds since the Unix epoch (SQLite only).</summary>
internal sealed class UnixMicrosecondsConverter() : ValueConverter<DateTimeOffset, long>(
    value => (value.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond,
    stored => new DateTimeOffset(DateTimeOffset.UnixEpoch.UtcTicks + (stored * TimeSpan.TicksPerMicrosecond), TimeSpan.Zero));
