using Microsoft.Extensions.Options;
using RAE.Silo;

try
{
    var app = RaeSiloHost.Build(args);
    await app.RunAsync();
    return 0;
}
catch (OptionsValidationException error)
{
    Console.Error.WriteLine($"rae-silo: bad configuration: {string.Join(" ", error.Failures)}");
    return 2;
}
catch (RAE.Models.Runtime.RuntimeSettingException error)
{
    Console.Error.WriteLine($"rae-silo: bad environment: {error.Message}");
    return 2;
}
