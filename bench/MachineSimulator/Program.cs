// Drives many simulated machines against one or more `sluice serve` replicas over the real agent protocol: each machine
// joins with its own single-use join token (created through the API as the operator), then heartbeats every interval
// with realistic telemetry (some machines with 8 GPUs, the rest with 0 or 1); every 100th machine is given a task
// through the API, and each machine reports back as ready whatever tasks the server's replies want on it. Prints
// heartbeat latency p50/p90/p99/max, the achieved rate and errors by kind.
//
//   machine-simulator --servers http://127.0.0.1:18090,http://127.0.0.1:18091 --machines 10000 --interval 10 --duration 60
//   (operator credentials in SIM_OPERATOR_EMAIL and SIM_OPERATOR_PASSWORD; --latency-log FILE writes each heartbeat's
//   end time in epoch ms, latency in µs and 1/0 for success, for measuring windows of the run)
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Sluice.Compute.Protocol;

var options = Options.Parse(args);
var email = Environment.GetEnvironmentVariable("SIM_OPERATOR_EMAIL") ?? throw new InvalidOperationException("SIM_OPERATOR_EMAIL is not set");
var password = Environment.GetEnvironmentVariable("SIM_OPERATOR_PASSWORD") ?? throw new InvalidOperationException("SIM_OPERATOR_PASSWORD is not set");
var clients = options.Servers.Select(server => new HttpClient(new SocketsHttpHandler
{
    MaxConnectionsPerServer = options.Connections,
    PooledConnectionLifetime = TimeSpan.FromMinutes(10),
    UseCookies = false,
})
{ BaseAddress = new Uri(server), Timeout = TimeSpan.FromSeconds(30) }).ToArray();

// ---- the operator creates one join token per machine ---------------------------------------------------------------
var clock = Stopwatch.StartNew();
using var operatorClient = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = new Uri(options.Servers[0]) };
(await operatorClient.PostAsJsonAsync("/api/v1/auth/login", new { email, password })).EnsureSuccessStatusCode();
var tokens = new string[options.Machines];
await Parallel.ForEachAsync(Enumerable.Range(0, options.Machines), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
{
    var response = await operatorClient.PostAsJsonAsync("/api/v1/machines/join-tokens", new { description = $"sim-{i}" }, ct);
    response.EnsureSuccessStatusCode();
    tokens[i] = (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("token").GetString()!;
});
Console.WriteLine($"tokens: {options.Machines} in {clock.Elapsed.TotalSeconds:0.0} s");

// ---- each machine joins (alternating replicas) ----------------------------------------------------------------------
clock.Restart();
var machines = new Machine[options.Machines];
await Parallel.ForEachAsync(Enumerable.Range(0, options.Machines), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
{
    var gpus = i % 5 == 0 ? 8 : i % 2; // a fifth are 8-GPU servers, the rest have 0 or 1
    var machine = new Machine(i, gpus);
    var join = new JoinRequest
    {
        Token = tokens[i],
        Hostname = $"sim-{i:D5}",
        AgentVersion = "sim",
        Inventory = machine.Inventory,
        ServingUrl = $"https://10.{i / 65536 % 256}.{i / 256 % 256}.{i % 256}:8443",
        CertificateSha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i))),
    };
    using var content = JsonContent.Create(join, ComputeJson.Default.JoinRequest);
    var response = await clients[i % clients.Length].PostAsync(AgentPaths.Join, content, ct);
    if (!response.IsSuccessStatusCode)
    {
        throw new InvalidOperationException($"join {i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }

    var joined = (await response.Content.ReadFromJsonAsync(ComputeJson.Default.JoinResponse, ct))!;
    machine.Credential = joined.Credential;
    machine.Id = joined.MachineId;
    machines[i] = machine;
});
Console.WriteLine($"joined: {options.Machines} in {clock.Elapsed.TotalSeconds:0.0} s");

// ---- one task on every 100th machine (a model server on its GPUs, or a job), so task reports travel too -------------------
clock.Restart();
var withTasks = machines.Where(m => m.Index % 100 == 0).ToList();
string[] engineArgs = ["engine", "llama", "--port", "{port}"];
await Parallel.ForEachAsync(withTasks, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (machine, ct) =>
{
    var task = machine.Inventory.Gpus.Count > 0
        ? (object)new { kind = TaskKinds.ModelServer, runtime = TaskRuntimes.Process, process = new { command = "sluice", args = engineArgs }, gpus = machine.Inventory.Gpus.Count }
        : new { kind = TaskKinds.Job, runtime = TaskRuntimes.Process, process = new { command = "true" } };
    var response = await operatorClient.PostAsJsonAsync($"/api/v1/machines/{machine.Id}/tasks", task, ct);
    if (!response.IsSuccessStatusCode)
    {
        throw new InvalidOperationException($"task on {machine.Index}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
    }
});
Console.WriteLine($"tasks: {withTasks.Count} in {clock.Elapsed.TotalSeconds:0.0} s");

// ---- heartbeats: each machine every interval, spread evenly over it ---------------------------------------------------
var latencies = new ConcurrentQueue<long>(); // microseconds
var timeline = new ConcurrentQueue<(long EpochMs, long Micros, bool Ok)>(); // for --latency-log: each heartbeat, when it ended
var errors = new ConcurrentDictionary<string, int>();
var inFlight = new SemaphoreSlim(options.Connections * clients.Length);
var late = 0L;
var sent = 0L;
var interval = TimeSpan.FromSeconds(options.IntervalSeconds);
var duration = TimeSpan.FromSeconds(options.DurationSeconds);
var tasks = new List<Task>();
clock.Restart();
var next = new long[options.Machines];
for (var i = 0; i < options.Machines; i++)
{
    next[i] = (long)(interval.Ticks * (double)i / options.Machines);
}

var order = Enumerable.Range(0, options.Machines).ToArray();
var cursor = 0;
var round = 0L;
while (clock.Elapsed < duration)
{
    var now = clock.Elapsed.Ticks;
    while (next[order[cursor]] <= now)
    {
        var machine = machines[order[cursor]];
        next[order[cursor]] += interval.Ticks;
        cursor = (cursor + 1) % order.Length;
        if (!inFlight.Wait(0))
        {
            Interlocked.Increment(ref late); // every connection busy: this heartbeat would be late
            await inFlight.WaitAsync();
        }

        Interlocked.Increment(ref sent);
        tasks.Add(Task.Run(async () =>
        {
            try
            {
                await HeartbeatAsync(clients[(int)((machine.Index + round) % clients.Length)], machine, latencies, timeline, errors);
            }
            finally
            {
                inFlight.Release();
            }
        }));
        if (cursor == 0)
        {
            round++;
        }
    }

    await Task.Delay(5);
}

var elapsed = clock.Elapsed.TotalSeconds;
await Task.WhenAll(tasks);
var sorted = latencies.ToArray();
Array.Sort(sorted);
double P(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))] / 1000.0;
var errorText = errors.IsEmpty ? "none" : string.Join(", ", errors.OrderBy(e => e.Key).Select(e => $"{e.Key}: {e.Value}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"heartbeats: machines={options.Machines} interval={options.IntervalSeconds}s target={options.Machines / options.IntervalSeconds:0}/s sent={sent} ok={sorted.Length} achieved={sorted.Length / elapsed:0}/s p50={P(0.50):0.0}ms p90={P(0.90):0.0}ms p99={P(0.99):0.0}ms max={P(1):0.0}ms late={late} errors={errorText}"));
if (options.LatencyLog is { } log)
{
    await File.WriteAllLinesAsync(log, timeline.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.EpochMs} {t.Micros} {(t.Ok ? 1 : 0)}")));
}

return errors.IsEmpty ? 0 : 1;

static async Task HeartbeatAsync(
    HttpClient client, Machine machine, ConcurrentQueue<long> latencies, ConcurrentQueue<(long, long, bool)> timeline, ConcurrentDictionary<string, int> errors)
{
    var request = machine.NextHeartbeat();
    using var content = JsonContent.Create(request, ComputeJson.Default.HeartbeatRequest);
    using var message = new HttpRequestMessage(HttpMethod.Post, AgentPaths.Heartbeat) { Content = content };
    message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", machine.Credential);
    var started = Stopwatch.GetTimestamp();
    try
    {
        using var response = await client.SendAsync(message);
        var body = await response.Content.ReadAsByteArrayAsync();
        if (response.IsSuccessStatusCode)
        {
            var micros = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds;
            latencies.Enqueue(micros);
            timeline.Enqueue((DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), micros, true));
            machine.Desired = JsonSerializer.Deserialize(body, ComputeJson.Default.HeartbeatResponse)?.Tasks ?? [];
        }
        else
        {
            errors.AddOrUpdate(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
            timeline.Enqueue((DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), 0, false));
            if (errors.Count < 3 && errors.Values.Sum() < 3)
            {
                Console.Error.WriteLine($"heartbeat {(int)response.StatusCode}: {Encoding.UTF8.GetString(body)}");
            }
        }
    }
    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
    {
        errors.AddOrUpdate(ex.GetType().Name, 1, (_, n) => n + 1);
        timeline.Enqueue((DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), 0, false));
    }
}

internal sealed class Machine(int index, int gpus)
{
    private readonly Random _random = new(index);

    // A running task's start and ready times do not change between heartbeats (a real agent reports the same ones).
    private readonly DateTimeOffset _taskStartedAt = DateTimeOffset.UtcNow.AddMinutes(-5);
    private long _sequence;

    public int Index => index;

    public string Credential { get; set; } = "";

    public string Id { get; set; } = "";

    /// <summary>The tasks the server last asked for; reported back as ready, as an agent running them would.</summary>
    public IReadOnlyList<TaskSpec> Desired { get; set; } = [];

    public MachineInventory Inventory { get; } = new()
    {
        Gpus = Enumerable.Range(0, gpus).Select(g => new GpuDevice
        {
            Index = g,
            Uuid = $"GPU-{index:x8}-{g:x4}-4000-8000-{index * 8L + g:x12}",
            Name = "NVIDIA H100 80GB HBM3",
            MemoryMib = 81559,
        }).ToList(),
        DriverVersion = gpus > 0 ? "550.90.07" : null,
        CudaVersion = gpus > 0 ? "12.4" : null,
        CpuCores = gpus >= 8 ? 192 : 16,
        MemoryBytes = (gpus >= 8 ? 2048L : 64L) << 30,
        DiskBytes = 2L << 40,
        OperatingSystem = "Ubuntu 22.04.4 LTS",
    };

    public HeartbeatRequest NextHeartbeat()
    {
        var sequence = Interlocked.Increment(ref _sequence);
        var busy = _random.NextDouble();
        return new HeartbeatRequest
        {
            Sequence = sequence,
            AgentVersion = "sim",
            Inventory = sequence == 1 ? Inventory : null,
            Telemetry = new TelemetrySample
            {
                At = DateTimeOffset.UtcNow,
                CpuPercent = Math.Round(100 * busy, 1),
                Load1 = Math.Round(Inventory.CpuCores * busy, 2),
                MemoryUsedBytes = (long)(Inventory.MemoryBytes * (0.2 + (0.6 * busy))),
                MemoryTotalBytes = Inventory.MemoryBytes,
                DiskUsedBytes = Inventory.DiskBytes / 3,
                DiskTotalBytes = Inventory.DiskBytes,
                Gpus = Inventory.Gpus.Select(g => new GpuSample
                {
                    Index = g.Index,
                    Uuid = g.Uuid,
                    MemoryUsedMib = (long)(g.MemoryMib * busy),
                    MemoryTotalMib = g.MemoryMib,
                    UtilizationPercent = Math.Round(100 * busy),
                    TemperatureC = Math.Round(35 + (45 * busy)),
                    PowerDrawW = Math.Round(70 + (630 * busy), 2),
                    XidErrors = 0,
                    EccErrors = 0,
                }).ToList(),
            },
            Tasks = Desired.Select(t => new TaskReport
            {
                TaskId = t.TaskId,
                Generation = t.Generation,
                State = TaskStates.Ready,
                StartedAt = _taskStartedAt,
                ReadyAt = _taskStartedAt.AddMinutes(1),
                InFlight = _random.Next(0, 4),
            }).ToList(),
        };
    }
}

internal sealed record Options(string[] Servers, int Machines, int IntervalSeconds, int DurationSeconds, int Connections, string? LatencyLog)
{
    public static Options Parse(string[] args)
    {
        string? Value(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        int Number(string name, int fallback) => Value(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new Options(
            (Value("--servers") ?? "http://127.0.0.1:18090").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Number("--machines", 10_000),
            Number("--interval", 10),
            Number("--duration", 60),
            Number("--connections", 128),
            Value("--latency-log"));
    }
}
