using System.Net;
using Corral.Server.Tests.Support;
using Microsoft.Data.Sqlite;

namespace Corral.Server.Tests.Security;

/// <summary>Bad input is refused before anything exists: no row, no file, no descriptor, however many times.</summary>
public sealed class RefusalTests
{
    private static readonly string[] Bodies =
    [
        """{"agent":"command","command":["true"],"limits":{"timeoutSeconds":1e20}}""",
        """{"agent":"command","command":["true"],"limits":{"timeoutSeconds":"Infinity"}}""",
        """{"agent":"command","agent":"command","command":["true"]}""",
        """{"agent":"command","command":"true"}""",
        """{"agent":"command","command":["true"],"workdir":"../out"}""",
        """{"agent":"command","command":["true"],"workdir":"/no/such/dir"}""",
        """{"agent":"nope"}""",
        """{"agent":"command","command":["true"],"unknown":1}""",
        """{"agent":"command","command":["true"],"secrets":{"S":"x"}}""",
        "{not json",
    ];

    private static long Rows(string data)
    {
        using var db = new SqliteConnection($"Data Source={Path.Combine(data, "corral.db")};Mode=ReadOnly;Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM tasks";
        return (long)cmd.ExecuteScalar()!;
    }

    private static int Entries(string data) => Directory.EnumerateFileSystemEntries(data, "*", SearchOption.AllDirectories).Count();

    private static int Descriptors(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    [Fact(Timeout = 300_000)]
    public async Task A_thousand_refused_requests_leave_no_row_no_file_and_no_descriptor()
    {
        string data = Directory.CreateTempSubdirectory("corral-refused-").FullName;
        var server = await ServerProcess.StartAsync(data);
        try
        {
            foreach (string body in Bodies)
                await server.Http.SendAsync(HttpMethod.Post, "/v1/tasks", rawBody: body); // connections and lazy state warmed up
            var before = (Rows: Rows(data), Entries: Entries(data), Fds: Descriptors(server.Pid));

            for (int i = 0; i < 1000; i++)
            {
                var r = await server.Http.SendAsync(HttpMethod.Post, "/v1/tasks", rawBody: Bodies[i % Bodies.Length]);
                Assert.Equal(HttpStatusCode.BadRequest, r.Status);
                Assert.NotNull(r.Body?["code"]);
            }

            Assert.Equal(before.Rows, Rows(data));
            Assert.Equal(before.Entries, Entries(data));
            await Proc.WaitForAsync(() => Descriptors(server.Pid) <= before.Fds, TimeSpan.FromSeconds(10),
                $"the server's descriptors to be back at {before.Fds} (now {Descriptors(server.Pid)})");
        }
        finally
        {
            server.Kill();
            SqliteConnection.ClearAllPools();
            Directory.Delete(data, true);
        }
    }
}
