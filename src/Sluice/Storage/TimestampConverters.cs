using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Sluice.Storage;

/// <summary>Stores a <see cref="DateTimeOffset"/> as UTC microseconds since the Unix epoch (SQLite only).</summary>
internal sealed class UnixMicrosecondsConverter() : ValueConverter<DateTimeOffset, long>(
    value => (value.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond,
    stored => new DateTimeOffset(DateTimeOffset.UnixEpoch.UtcTicks + (stored * TimeSpan.TicksPerMicrosecond), TimeSpan.Zero));

/// <summary>Normalises a <see cref="DateTimeOffset"/> to UTC before it is written (PostgreSQL timestamptz).</summary>
internal sealed class UtcConverter() : ValueConverter<DateTimeOffset, DateTimeOffset>(
    value => value.ToUniversalTime(),
    stored => stored);
