using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Silo.Web;

/// <summary>
/// The job pages (<c>/jobs</c>, <c>/jobs/{id}</c>, their curve and grid images) and the JSON behind each of them
/// (<c>/api/jobs</c>, <c>/api/jobs/{id}</c>, <c>.../metrics</c>, <c>.../checkpoints</c>, <c>.../config</c>, <c>.../grid</c>).
/// A malformed id is refused (400) before any grain is asked; an unknown one is 404.
/// </summary>
public static class JobWebEndpoints
{
    public const int DefaultMetricsLimit = 10_000;
    public const int MaxMetricsLimit = 100_000;

    public static void MapRaeJobPages(this IEndpointRouteBuilder app)
    {
        app.MapGet("/jobs", ListPage); // routing matches "/jobs/" too
        app.MapGet("/jobs/{jobId}", (string jobId, HttpContext context, JobReader reader, IBlobStore blobs) =>
            WithJob(jobId, context, json: false, reader, async job =>
            {
                var checkpoints = await reader.CheckpointsAsync(job);
                var grid = await LatestGrid.FindAsync(blobs, job, context.RequestAborted);
                return Page(context, JobPagesHtml.JobPage(job, checkpoints, grid, job.HasMetrics));
            }));
        app.MapGet("/jobs/{jobId}/curves/{curve}.png", (string jobId, string curve, HttpContext context, JobReader reader) =>
            WithJob(jobId, context, json: false, reader, async job =>
            {
                if (job.OnlineMetrics.FirstOrDefault(m => MetricCurves.EvaluationCurveNameOf(m, first: m == job.OnlineMetric) == curve) is { } metric)
                    return Png(context, MetricCurves.RenderEvaluationPng(job.Training!.Evaluations, metric, job.JobId));
                if (MetricCurves.Find(curve) is not { } known)
                    return Text(context, StatusCodes.Status404NotFound, $"No such curve; known: {string.Join(", ", MetricCurves.All.Select(c => c.Name))}.");
                if (!job.HasMetrics) return Text(context, StatusCodes.Status404NotFound, "This job records no step metrics.");
                return Png(context, MetricCurves.RenderPng(await reader.MetricsAsync(job), known, job.JobId));
            }));
        app.MapGet("/jobs/{jobId}/grid.png", (string jobId, HttpContext context, JobReader reader, IBlobStore blobs) =>
            WithJob(jobId, context, json: false, reader, async job =>
                await LatestGrid.FindAsync(blobs, job, context.RequestAborted) is { } grid
                    ? Png(context, await LatestGrid.RenderPngAsync(blobs, grid, context.RequestAborted))
                    : Text(context, StatusCodes.Status404NotFound, "This job has no sample or reconstruction grid (yet).")));
    }

    public static void MapRaeJobApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/jobs", async (string? after, int? limit, HttpContext context, JobReader reader) =>
        {
            if (after is null && limit is null) return Json(context, await reader.ListAsync());
            if (limit is < 1 or > IJobRegistryGrain.MaxPageSize)
                return Error(context, StatusCodes.Status400BadRequest, $"'limit' must be within 1..{IJobRegistryGrain.MaxPageSize}, got {limit}.");
            if (after is not null && JobIds.Problem(after) is { } problem) return Error(context, StatusCodes.Status400BadRequest, $"Bad job id in 'after': {problem}.");
            try
            {
                return Json(context, await reader.ListAsync(after, limit ?? IJobRegistryGrain.MaxPageSize));
            }
            catch (RaeJobException error)
            {
                return Error(context, StatusCodes.Status404NotFound, error.Message);
            }
        });
        app.MapGet("/api/jobs/{jobId}", (string jobId, HttpContext context, JobReader reader) =>
            WithJob(jobId, context, json: true, reader, job => Task.FromResult(Json(context, job.Status))));
        app.MapGet("/api/jobs/{jobId}/metrics", (string jobId, long? from, int? limit, HttpContext context, JobReader reader) =>
        {
            if (from is < 0) return Task.FromResult(Error(context, StatusCodes.Status400BadRequest, $"'from' must be a step (0 or more), got {from}."));
            if (limit is < 1 or > MaxMetricsLimit) return Task.FromResult(Error(context, StatusCodes.Status400BadRequest, $"'limit' must be within 1..{MaxMetricsLimit}, got {limit}."));
            return WithJob(jobId, context, json: true, reader, async job =>
            {
                var metrics = await reader.MetricsAsync(job, from ?? 0);
                var take = limit ?? DefaultMetricsLimit;
                return Json(context, new
                {
                    jobId = job.JobId,
                    fromStep = from ?? 0,
                    total = metrics.Count,
                    truncated = metrics.Count > take,
                    metrics = metrics.Take(take),
                });
            });
        });
        app.MapGet("/api/jobs/{jobId}/checkpoints", (string jobId, HttpContext context, JobReader reader) =>
            WithJob(jobId, context, json: true, reader, async job => Json(context, await reader.CheckpointsAsync(job))));
        app.MapGet("/api/jobs/{jobId}/config", (string jobId, HttpContext context, JobReader reader) =>
            WithJob(jobId, context, json: true, reader, job => Task.FromResult(job.Config is { } config
                ? Json(context, new { jobId = job.JobId, sourceName = config.SourceName, sha256 = config.Sha256, yaml = config.Yaml })
                : Error(context, StatusCodes.Status404NotFound, "This job has no configuration of its own."))));
        app.MapGet("/api/jobs/{jobId}/grid", (string jobId, HttpContext context, JobReader reader, IBlobStore blobs) =>
            WithJob(jobId, context, json: true, reader, async job => await LatestGrid.FindAsync(blobs, job, context.RequestAborted) is { } grid
                ? Json(context, new { jobId = job.JobId, grid.Kind, grid.Step, grid.Composed, images = grid.Blobs, url = JobPagesHtml.JobUrl(job.JobId) + "/grid.png" })
                : Error(context, StatusCodes.Status404NotFound, "This job has no sample or reconstruction grid (yet).")));
    }

    private static async Task<IResult> ListPage(HttpContext context, JobReader reader) =>
        Page(context, JobPagesHtml.JobsList(await reader.ListAsync()));

    private static async Task<IResult> WithJob(string jobId, HttpContext context, bool json, JobReader reader, Func<JobView, Task<IResult>> then)
    {
        if (JobIds.Problem(jobId) is { } problem)
            return json ? Error(context, StatusCodes.Status400BadRequest, $"Bad job id: {problem}.") : Text(context, StatusCodes.Status400BadRequest, $"Bad job id: {problem}.");
        JobView job;
        try
        {
            job = await reader.GetAsync(jobId);
        }
        catch (RaeJobException error)
        {
            return json ? Error(context, StatusCodes.Status404NotFound, error.Message) : Text(context, StatusCodes.Status404NotFound, error.Message);
        }
        return await then(job);
    }

    private static void Protect(HttpContext context)
    {
        context.Response.Headers.XContentTypeOptions = "nosniff";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["Referrer-Policy"] = "no-referrer";
    }

    private static IResult Page(HttpContext context, string html)
    {
        Protect(context);
        context.Response.Headers.ContentSecurityPolicy = JobPagesHtml.ContentSecurityPolicy;
        return Results.Content(html, "text/html; charset=utf-8");
    }

    private static IResult Png(HttpContext context, byte[] png)
    {
        Protect(context);
        return Results.File(png, "image/png");
    }

    private static IResult Json(HttpContext context, object value)
    {
        Protect(context);
        return Results.Json(value, WebJson.Options);
    }

    private static IResult Error(HttpContext context, int status, string message)
    {
        Protect(context);
        return Results.Json(new { error = message }, WebJson.Options, statusCode: status);
    }

    private static IResult Text(HttpContext context, int status, string message)
    {
        Protect(context);
        return Results.Text(message, "text/plain; charset=utf-8", statusCode: status);
    }
}
