Console.WriteLine(RAE.Models.TorchInfo.Describe());
