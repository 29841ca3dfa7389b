using Corral.Server.Internal.Storage.Postgres;
using Corral.Server.Tests.Fleet;
using Corral.Testing.Support.Postgres;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Corral.Server.Tests.Storage;

/// <summary>The PostgreSQL task store on a real database.</summary>
public sealed class PostgresTaskStoreTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    [Fact(Timeout = 60_000)]
    public async Task A_page_of_large_records_ends_at_its_size_in_the_database_and_the_next_page_starts_after_it()
    {
        if (PostgresCluster.Unavailable is { } why)
            Assert.Skip(why);
        await using var db = NpgsqlDataSource.Create(await postgres.Cluster.CreateDatabaseAsync());
        await PostgresSchema.MigrateAsync(db, TestContext.Current.CancellationToken);
        await using var store = new PostgresTaskStore(db, "a", TimeProvider.System, TimeSpan.FromSeconds(5), NullLogger<PostgresTaskStore>.Instance);
        await SqliteTaskStoreTests.PagesEndAtTheirSizeAsync(store);
    }
}
