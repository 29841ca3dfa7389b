using Corral.Server.Internal;
using Microsoft.AspNetCore.Http;

namespace Corral.Server.Api;

/// <summary>
/// A task record as the response, written from <see cref="ApiJson.Utf8"/>: a task's final record is already in that
/// form (its journal and its row took the same bytes), so a waiting client does not cost a third serialization.
/// The same body as <c>TypedResults.Json(record, ApiJson.Options, statusCode)</c>.
/// </summary>
internal sealed class RecordResult(TaskRecord record, int statusCode) : IResult
{
    private const string ContentType = "application/json; charset=utf-8";

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        byte[] json = ApiJson.Utf8(record);
        var response = httpContext.Response;
        response.StatusCode = statusCode;
        response.ContentType = ContentType;
        response.ContentLength = json.Length;
        await response.BodyWriter.WriteAsync(json, httpContext.RequestAborted).ConfigureAwait(false);
    }
}
