using System.Net;
using Corral.Server.Internal.Isolation;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace Corral.Server.Api;

/// <summary>
/// Without a token, whoever reaches the loopback address may use the API, and tasks run on this host: a task could
/// read every other task's output and requests, cancel them, or start more. So a connection whose client socket
/// belongs to a uid that tasks run as is refused (403 <c>forbidden</c>). The owner is looked up once per connection.
/// With a token this is not needed: a task never sees it (an operator may hand it to one on purpose).
/// </summary>
internal static class TaskCallers
{
    private static readonly object FromTaskKey = new();

    public static Func<HttpContext, RequestDelegate, Task> Refuse(TaskUsers users) => async (context, next) =>
    {
        if (!users.Isolated || !FromTask(context, users))
        {
            await next(context);
            return;
        }

        await Problems.Problem(context, 403, "forbidden", "Forbidden",
            "A task cannot use this server's API: it has no token, and requests from the uids tasks run as are refused.").ExecuteAsync(context);
    };

    private static bool FromTask(HttpContext context, TaskUsers users)
    {
        var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
        if (items?.TryGetValue(FromTaskKey, out var known) == true)
            return (bool)known!;
        // The socket's own addresses: forwarded headers, where an operator turns them on, rewrite the connection's.
        var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket;
        var connection = context.Connection;
        var remote = socket?.RemoteEndPoint as IPEndPoint ?? (connection.RemoteIpAddress is { } r ? new IPEndPoint(r, connection.RemotePort) : null);
        var local = socket?.LocalEndPoint as IPEndPoint ?? (connection.LocalIpAddress is { } l ? new IPEndPoint(l, connection.LocalPort) : null);
        // Refused when the owner cannot be told: the client's socket is gone, or it is not this host's.
        bool fromTask = remote is null || local is null || LocalPeers.OwnerOf(remote, local) is not { } owner || users.IsTaskUid(owner);
        if (items is not null)
            items[FromTaskKey] = fromTask;
        return fromTask;
    }
}
