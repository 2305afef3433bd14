using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sluice.Compute.Protocol;

namespace Sluice.Agent.Tasks;

/// <summary>
/// Runs a container task through the Docker Engine API on its Unix socket (a small client of our own: pull, create,
/// start, wait, logs, stop, remove; no SDK dependency). GPUs are a DeviceRequest for the assigned indices; the
/// container's port is published on 127.0.0.1 only. Secrets are not put in the container's environment (Docker keeps a
/// container's configuration on disk): each is a file under <c>/run/secrets/NAME</c>, bind-mounted read-only from a
/// 0700 directory on a tmpfs that is removed with the container, and <c>NAME_FILE</c> points at it.
/// </summary>
internal sealed class DockerRuntime(TaskSupervisorOptions options, ILogger logger) : ITaskRuntime, IDisposable
{
    private const string ApiVersion = "v1.41"; // Docker 20.10+: DeviceRequests are 1.40+
    private readonly Lazy<HttpClient> _client = new(() => CreateClient(options.DockerSocket));

    public string? Unavailable => File.Exists(options.DockerSocket)
        ? null
        : $"Docker is not available on this machine (no Docker Engine socket at {options.DockerSocket}); container tasks need Docker";

    public async Task PrepareAsync(TaskSpec spec, CancellationToken cancellationToken)
    {
        var (image, tag) = SplitImage(spec.Container!.Image);
        var query = tag is null ? $"fromImage={Uri.EscapeDataString(image)}" : $"fromImage={Uri.EscapeDataString(image)}&tag={Uri.EscapeDataString(tag)}";
        using var response = await _client.Value.PostAsync(new Uri($"/{ApiVersion}/images/create?{query}", UriKind.Relative), null, cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, "pull", cancellationToken).ConfigureAwait(false);

        // The pull streams progress as JSON lines; an error after the 200 comes as {"error": …} in the stream.
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (body.Contains("\"error\"", StringComparison.Ordinal))
        {
            throw new TaskSpecException("Docker could not pull the task's image (not found, or the registry refused)");
        }
    }

    public async Task<ITaskInstance> StartAsync(TaskSpec spec, int port, TaskLog log, CancellationToken cancellationToken)
    {
        var name = ContainerName(spec);
        var client = _client.Value;
        using (await client.DeleteAsync(new Uri($"/{ApiVersion}/containers/{name}?force=true", UriKind.Relative), cancellationToken).ConfigureAwait(false))
        {
            // A container of the same name left by an agent that did not exit cleanly.
        }

        var secrets = WriteSecrets(spec);
        try
        {
            var body = CreateBody(spec, port, secrets?.Inner);
            using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            using var created = await client.PostAsync(new Uri($"/{ApiVersion}/containers/create?name={name}", UriKind.Relative), content, cancellationToken).ConfigureAwait(false);
            await EnsureAsync(created, "create", cancellationToken).ConfigureAwait(false);
            var id = JsonNode.Parse(await created.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false))?["Id"]?.GetValue<string>()
                ?? throw new TaskSpecException("Docker created the container but returned no id");
            using var started = await client.PostAsync(new Uri($"/{ApiVersion}/containers/{id}/start", UriKind.Relative), null, cancellationToken).ConfigureAwait(false);
            await EnsureAsync(started, "start", cancellationToken).ConfigureAwait(false);
            return new ContainerInstance(client, id, secrets?.Outer, log);
        }
        catch
        {
            RemoveSecrets(secrets?.Outer);
            throw;
        }
    }

    /// <summary>The body of <c>POST /containers/create</c>: what the task spec becomes in Docker's terms.</summary>
    internal static JsonObject CreateBody(TaskSpec spec, int hostPort, string? secretsDirectory)
    {
        var container = spec.Container ?? throw new TaskSpecException("a container task needs 'container' with an image");
        var portText = hostPort.ToString(CultureInfo.InvariantCulture);
        var containerPort = (container.ContainerPort ?? hostPort).ToString(CultureInfo.InvariantCulture) + "/tcp";
        var env = new JsonArray();
        foreach (var (key, value) in container.Environment ?? new Dictionary<string, string>())
        {
            env.Add($"{key}={value.Replace("{port}", portText, StringComparison.Ordinal)}");
        }

        foreach (var key in (spec.Secrets ?? new Dictionary<string, string>()).Keys)
        {
            env.Add($"{key}_FILE=/run/secrets/{key}");
        }

        env.Add($"PORT={(container.ContainerPort ?? hostPort).ToString(CultureInfo.InvariantCulture)}");
        var host = new JsonObject
        {
            ["PortBindings"] = new JsonObject { [containerPort] = new JsonArray(new JsonObject { ["HostIp"] = "127.0.0.1", ["HostPort"] = portText }) },
            ["AutoRemove"] = false,
            ["RestartPolicy"] = new JsonObject { ["Name"] = "no" },
        };
        if (spec.GpuIndices.Count > 0)
        {
            host["DeviceRequests"] = new JsonArray(new JsonObject
            {
                ["Driver"] = "nvidia",
                ["DeviceIDs"] = new JsonArray([.. spec.GpuIndices.Select(i => JsonValue.Create(i.ToString(CultureInfo.InvariantCulture)))]),
                ["Capabilities"] = new JsonArray(new JsonArray("gpu")),
            });
        }
        else
        {
            env.Add("NVIDIA_VISIBLE_DEVICES=void"); // a task without GPUs sees none, even under the nvidia runtime
        }

        if (secretsDirectory is not null)
        {
            host["Binds"] = new JsonArray($"{secretsDirectory}:/run/secrets:ro");
        }

        var body = new JsonObject
        {
            ["Image"] = container.Image,
            ["Env"] = env,
            ["ExposedPorts"] = new JsonObject { [containerPort] = new JsonObject() },
            ["Labels"] = new JsonObject { ["sluice.task_id"] = spec.TaskId, ["sluice.generation"] = spec.Generation.ToString(CultureInfo.InvariantCulture) },
            ["HostConfig"] = host,
        };
        if (container.Command is { Count: > 0 } command)
        {
            body["Cmd"] = new JsonArray([.. command.Select(c => JsonValue.Create(c.Replace("{port}", portText, StringComparison.Ordinal)))]);
        }

        return body;
    }

    internal static string ContainerName(TaskSpec spec)
    {
        var safe = new string([.. spec.TaskId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' ? c : '-')]);
        return $"sluice-task-{safe}-g{spec.Generation.ToString(CultureInfo.InvariantCulture)}";
    }

    internal static (string Image, string? Tag) SplitImage(string reference)
    {
        if (reference.Contains('@', StringComparison.Ordinal))
        {
            return (reference, null); // a digest pins it
        }

        var slash = reference.LastIndexOf('/');
        var colon = reference.LastIndexOf(':');
        return colon > slash ? (reference[..colon], reference[(colon + 1)..]) : (reference, "latest");
    }

    private (string Outer, string Inner)? WriteSecrets(TaskSpec spec)
    {
        if (spec.Secrets is not { Count: > 0 } secrets)
        {
            return null;
        }

        if (OperatingSystem.IsWindows() || !Directory.Exists(options.SecretsRoot))
        {
            throw new TaskSpecException("the task has secrets but this machine has no tmpfs for them (SecretsRoot is missing)");
        }

        // Outer: 0700, so no other user on the machine can reach the files; inner: what the container sees.
        var outer = Path.Combine(options.SecretsRoot, "sluice-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(outer, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var inner = Path.Combine(outer, "secrets");
        Directory.CreateDirectory(inner, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        foreach (var (key, value) in secrets)
        {
            if (key.Length == 0 || key.Contains('/', StringComparison.Ordinal) || key.Contains("..", StringComparison.Ordinal))
            {
                throw new TaskSpecException("a secret's name is not a valid file name");
            }

            File.WriteAllText(Path.Combine(inner, key), value);
        }

        return (outer, inner);
    }

    private static void RemoveSecrets(string? outer)
    {
        if (outer is not null && Directory.Exists(outer))
        {
            Directory.Delete(outer, recursive: true);
        }
    }

    private async Task EnsureAsync(HttpResponseMessage response, string operation, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        // Docker's message can quote the image or the configuration: it is not kept.
        _ = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        TasksLog.DockerRefused(logger, operation, (int)response.StatusCode);
        throw new TaskSpecException(response.StatusCode switch
        {
            HttpStatusCode.NotFound when operation == "pull" => "Docker could not find the task's image",
            HttpStatusCode.NotFound => $"Docker could not {operation} the container (not found: is the image present?)",
            _ => $"Docker refused to {operation} the container ({(int)response.StatusCode})",
        });
    }

    private static HttpClient CreateClient(string socket) =>
        new(new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = async (_, cancellationToken) =>
            {
                var connection = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await connection.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(connection, ownsSocket: true);
                }
                catch
                {
                    connection.Dispose();
                    throw;
                }
            },
        })
        {
            BaseAddress = new Uri("http://docker"),
            Timeout = Timeout.InfiniteTimeSpan, // /wait and /logs?follow stay open for the container's life
        };

    public void Dispose()
    {
        if (_client.IsValueCreated)
        {
            _client.Value.Dispose();
        }
    }

    private sealed class ContainerInstance : ITaskInstance
    {
        private readonly HttpClient _client;
        private readonly string _id;
        private readonly string? _secrets;
        private readonly CancellationTokenSource _follow = new();
        private readonly Lock _gate = new();
        private Task? _stopping;

        public ContainerInstance(HttpClient client, string id, string? secrets, TaskLog log)
        {
            _client = client;
            _id = id;
            _secrets = secrets;
            Exited = WaitAsync();
            _ = FollowLogsAsync(log);
        }

        public Task<int> Exited { get; }

        public Task StopAsync(TimeSpan grace)
        {
            lock (_gate)
            {
                return _stopping ??= StopCoreAsync(grace);
            }
        }

        public void KillNow()
        {
            // Synchronous best effort on the agent's exit: Docker kills and removes it.
            try
            {
                using var response = _client.Send(new HttpRequestMessage(HttpMethod.Delete, new Uri($"/{ApiVersion}/containers/{_id}?force=true", UriKind.Relative)));
            }
            catch (HttpRequestException)
            {
            }

            RemoveSecrets(_secrets);
        }

        private async Task StopCoreAsync(TimeSpan grace)
        {
            try
            {
                var seconds = Math.Max(0, (int)grace.TotalSeconds).ToString(CultureInfo.InvariantCulture);
                using (await _client.PostAsync(new Uri($"/{ApiVersion}/containers/{_id}/stop?t={seconds}", UriKind.Relative), null).ConfigureAwait(false))
                {
                }

                using (await _client.DeleteAsync(new Uri($"/{ApiVersion}/containers/{_id}?force=true", UriKind.Relative)).ConfigureAwait(false))
                {
                }
            }
            catch (HttpRequestException)
            {
            }
            finally
            {
                await _follow.CancelAsync().ConfigureAwait(false);
                RemoveSecrets(_secrets);
            }
        }

        private async Task<int> WaitAsync()
        {
            try
            {
                using var response = await _client.PostAsync(new Uri($"/{ApiVersion}/containers/{_id}/wait", UriKind.Relative), null).ConfigureAwait(false);
                var node = JsonNode.Parse(await response.Content.ReadAsStringAsync().ConfigureAwait(false));
                return node?["StatusCode"]?.GetValue<int>() ?? -1;
            }
            catch (Exception exception) when (exception is HttpRequestException or JsonException or InvalidOperationException)
            {
                return -1;
            }
        }

        /// <summary>Docker's multiplexed log stream (8-byte frame headers) into the task's in-memory buffer.</summary>
        private async Task FollowLogsAsync(TaskLog log)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"/{ApiVersion}/containers/{_id}/logs?follow=true&stdout=true&stderr=true", UriKind.Relative));
                using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _follow.Token).ConfigureAwait(false);
                var raw = response.Content.Headers.ContentType is MediaTypeHeaderValue { MediaType: "application/vnd.docker.raw-stream" };
                await using var stream = await response.Content.ReadAsStreamAsync(_follow.Token).ConfigureAwait(false);
                await ReadFramesAsync(stream, raw, log, _follow.Token).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException or IOException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
            _follow.Dispose();
        }
    }

    /// <summary>Reads Docker's log stream: frames of [stream, 0, 0, 0, size (big-endian)] + payload, or raw bytes with a TTY.</summary>
    internal static async Task ReadFramesAsync(Stream stream, bool raw, TaskLog log, CancellationToken cancellationToken)
    {
        var pending = new StringBuilder();
        var header = new byte[8];
        var buffer = new byte[16 * 1024];
        while (true)
        {
            int size;
            if (raw)
            {
                size = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (size == 0)
                {
                    break;
                }

                Lines(Encoding.UTF8.GetString(buffer, 0, size));
                continue;
            }

            try
            {
                await stream.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
            }
            catch (EndOfStreamException)
            {
                break;
            }

            size = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
            while (size > 0)
            {
                var read = await stream.ReadAsync(buffer.AsMemory(0, Math.Min(size, buffer.Length)), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return;
                }

                Lines(Encoding.UTF8.GetString(buffer, 0, read));
                size -= read;
            }
        }

        if (pending.Length > 0)
        {
            log.Append(pending.ToString());
        }

        void Lines(string text)
        {
            foreach (var c in text)
            {
                if (c == '\n')
                {
                    log.Append(pending.ToString().TrimEnd('\r'));
                    pending.Clear();
                }
                else
                {
                    pending.Append(c);
                }
            }
        }
    }
}
