using System.Diagnostics;
using System.Net;
using Corral.Server.Tests.Support;
using Microsoft.Data.Sqlite;

namespace Corral.Server.Tests.Storage;

/// <summary>A full disk is a clear error, never a stuck task or a dead server, and service resumes when space returns.</summary>
public sealed class DiskFullTests
{
    [Fact(Timeout = 300_000)]
    public async Task A_task_that_fills_the_disk_ends_storage_full_new_tasks_get_507_and_service_resumes_when_space_returns()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Mounting a small tmpfs for the data directory needs root (CI runs as root).");
        string mount = Directory.CreateTempSubdirectory("corral-full-").FullName;
        Proc.Run("mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "corral-test", mount);
        ServerProcess? server = null;
        try
        {
            string data = Path.Combine(mount, "data");
            server = await ServerProcess.StartAsync(data, s =>
            {
                s["Corral:MinFreeDiskMb"] = "2";
                s["Corral:DiskReserveMb"] = "4";
            });
            var before = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "before" } }, wait: 30);
            Assert.Equal(HttpStatusCode.OK, before.Status);

            // 100 MB of output on a 48 MB disk.
            var flood = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "yes $(printf %099d 0) | head -c 100000000" } }, wait: 120);
            Assert.Equal((HttpStatusCode)507, flood.Status);
            Assert.Equal("failed", flood.TaskStatus);
            Assert.Equal("storage_full", flood.ErrorCode);
            Assert.True(flood.Body!["output"]!["droppedBytes"]!.GetValue<long>() > 0);
            Assert.Equal("failed", (await server.Http.GetTaskAsync(flood.Id!)).TaskStatus);
            var events = await server.Http.ReadEventsAsync(flood.Id!);
            Assert.Equal("task.end", events[^1].Name);

            // The server is up, refuses new tasks clearly, and its database is intact.
            Assert.Equal(HttpStatusCode.OK, (await server.Http.SendAsync(HttpMethod.Get, "/healthz")).Status);
            var refused = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "x" } }, wait: 30);
            Assert.Equal((HttpStatusCode)507, refused.Status);
            Assert.Equal("storage_full", refused.Body!["code"]!.GetValue<string>());
            Assert.Equal("ok", IntegrityCheck(Path.Combine(data, "corral.db")));

            // Space returns (the failed task and its output are deleted): new tasks run again.
            Assert.Equal(HttpStatusCode.NoContent, (await server.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{flood.Id}")).Status);
            ApiResponse? after = null;
            await Proc.WaitForAsync(async () =>
            {
                after = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "after" } }, wait: 30);
                return after.Status != (HttpStatusCode)507;
            }, TimeSpan.FromSeconds(30), "the server to take tasks again");
            Assert.Equal(HttpStatusCode.OK, after!.Status);
            Assert.Equal("after\n", after.Body!["result"]!["text"]!.GetValue<string>());
            Assert.Equal("before\n", (await server.Http.GetTaskAsync(before.Id!)).Body!["result"]!["text"]!.GetValue<string>());
        }
        finally
        {
            server?.Kill();
            SqliteConnection.ClearAllPools();
            Proc.Run("umount", "-l", mount);
            Directory.Delete(mount, true);
        }
    }

    private static string? IntegrityCheck(string database)
    {
        using var db = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA integrity_check";
        return cmd.ExecuteScalar() as string;
    }
}
