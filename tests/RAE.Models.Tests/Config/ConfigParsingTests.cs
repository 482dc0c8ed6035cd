using RAE.Configuration;

namespace RAE.Models.Tests.Config;

public sealed class ConfigParsingTests
{
    [Fact]
    public void ReadsTheMainStage2TrainingConfigIntoTypedValues()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.Stage2TrainingXL, "DiTDH-XL_DINOv2-B.yaml");

        var rae = config.Stage1!.Params;
        Assert.Equal("stage1.RAE", config.Stage1.Target);
        Assert.Equal(RaeParams.Dinov2, rae.EncoderCls);
        Assert.Equal(224, rae.EncoderInputSize);
        Assert.Equal(16, rae.TokenGridSize);
        Assert.Equal("facebook/dinov2-with-registers-base", rae.EncoderParams.Dinov2Path);
        Assert.Equal(0.0, rae.NoiseTau);
        Assert.Equal(16, rae.DecoderPatchSize);
        Assert.Equal("models/stats/dinov2/wReg_base/imagenet1k/stat.pt", rae.NormalizationStatPath);

        var model = Assert.IsType<DiTwDDTHeadParams>(config.Stage2!.Params);
        Assert.Equal(new EncoderDecoderPair(1152, 2048), model.HiddenSize);
        Assert.Equal(new EncoderDecoderPair(28, 2), model.Depth);
        Assert.Equal(new EncoderDecoderPair(16, 16), model.NumHeads);
        Assert.Equal(EncoderDecoderPair.Both(1), model.PatchSize);
        Assert.Equal((768, 16, 1000), (model.InChannels, model.InputSize, model.NumClasses));
        Assert.True(model.UseSwiGlu && model.UseRope && model.UseRmsNorm && model.UsePosEmbed);
        Assert.False(model.UseQkNorm || model.WoShift);
        Assert.Equal(new object[] { 1152L, 2048L }, (object?[])config.Stage2.RawParams["hidden_size"]!);
        Assert.Equal(false, config.Stage2.RawParams["use_qknorm"]);

        Assert.True(config.Transport.TimeDistribution.IsLogitNormal);
        Assert.Equal((0.0, 1.0), (config.Transport.TimeDistribution.Mu, config.Transport.TimeDistribution.Sigma));
        Assert.Null(config.Transport.LossWeight);
        Assert.Equal((SamplerMode.ODE, "euler", 50), (config.Sampler.Mode, config.Sampler.SamplingMethod, config.Sampler.NumSteps));
        Assert.Equal((1e-6, 1e-3), (config.Sampler.Atol, config.Sampler.Rtol));
        Assert.Equal((GuidanceMethod.Cfg, 1.0, 0.0, 1.0), (config.Guidance.Method, config.Guidance.Scale, config.Guidance.TMin, config.Guidance.TMax));
        Assert.False(config.Guidance.IsActive);
        Assert.Equal(Math.Sqrt(48), config.TimeDistShift, 12);
        Assert.Equal(1000, config.Misc.NullLabel);

        var training = config.Training!;
        Assert.Equal((1400, 1024, 1), (training.Epochs, training.GlobalBatchSize, training.GradAccumSteps));
        Assert.Equal((0.9995, 16, 100, 10, 10000L), (training.EmaDecay, training.NumWorkers, training.LogInterval, training.CheckpointInterval, training.SampleEvery));
        Assert.Equal((1.0, 42L), (training.ClipGrad, training.GlobalSeed));
        Assert.Equal(2e-4, training.Optimizer.Lr);
        Assert.Equal(new[] { 0.9, 0.95 }, training.Optimizer.Betas);
        var scheduler = training.Scheduler!;
        Assert.Equal(LrScheduleType.Linear, scheduler.Type);
        Assert.Equal((40.0, 800.0, 2e-4, 2e-5, false), (scheduler.WarmupEpochs, scheduler.DecayEndEpoch, scheduler.BaseLr, scheduler.FinalLr, scheduler.WarmupFromZero));
        Assert.Equal(40 * 1251L, scheduler.WarmupStepCount(1251));
        Assert.Equal(800 * 1251L, scheduler.DecayEndStepCount(1251));

        Assert.Equal((25000L, true), (config.Eval!.EvalInterval, config.Eval.EvalModel));
        Assert.Equal("data/imagenet/VIRTUAL_imagenet256_labeled.npz", config.Eval.ReferenceNpzPath);
        Assert.Null(config.Gan);
    }

    [Fact]
    public void ReadsDashedGuidanceTimesAndTheAutoguidanceModel()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.SamplingAutoguidance, "DiTDHXL-DINOv2-B_AG.yaml");

        Assert.Equal(GuidanceMethod.Autoguidance, config.Guidance.Method);
        Assert.Equal(1.42, config.Guidance.Scale);
        Assert.True(config.Guidance.IsActive);
        Assert.Equal((0.0, 1.0), (config.Guidance.TMin, config.Guidance.TMax));
        var guide = config.Guidance.GuidanceModel!;
        Assert.Equal("models/DiTs/Dinov2/wReg_base/ImageNet256/DiTDH-S_ep14/stage2_model.pt", guide.Ckpt);
        var small = Assert.IsType<DiTwDDTHeadParams>(guide.Params);
        Assert.Equal((new EncoderDecoderPair(384, 2048), new EncoderDecoderPair(12, 2), new EncoderDecoderPair(6, 16)),
            (small.HiddenSize, small.Depth, small.NumHeads));
        Assert.Equal("models/DiTs/Dinov2/wReg_base/ImageNet256/DiTDH-XL/stage2_model.pt", config.Stage2!.Ckpt);
        Assert.False(config.Transport.TimeDistribution.IsLogitNormal);
        Assert.Null(config.Training);
    }

    [Theory]
    [InlineData("t_min: 0.2\n  t_max: 0.8")]
    [InlineData("t-min: 0.2\n  t-max: 0.8")]
    [InlineData("t_min: 0.2\n  t-max: 0.8")]
    public void AcceptsBothSpellingsOfTheGuidanceInterval(string interval)
    {
        var config = RaeConfig.Parse($"guidance:\n  method: cfg\n  scale: 2.5\n  {interval}\n", "interval.yaml");

        Assert.Equal((0.2, 0.8), (config.Guidance.TMin, config.Guidance.TMax));
        Assert.Equal(2.5, config.Guidance.Scale);
    }

    [Fact]
    public void ReadsLegacyFlatTrainingKeysIntoTheCurrentOptions()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.LegacyTraining512, "ImageNet512/DiTDH-XL_DINOv2-B.yaml");

        Assert.Equal(448, config.Stage1!.Params.EncoderInputSize);
        var training = config.Training!;
        Assert.Equal(100, training.LogInterval);
        Assert.Equal(5000L, training.CheckpointEverySteps);
        Assert.Equal((4, 0L, 1024), (training.NumWorkers, training.GlobalSeed, training.GlobalBatchSize));
        Assert.Equal(2e-4, training.Optimizer.Lr);
        Assert.Equal(new[] { 0.9, 0.95 }, training.Optimizer.Betas);
        Assert.Equal(0.0, training.Optimizer.WeightDecay);
        var scheduler = training.Scheduler!;
        Assert.Equal(LrScheduleType.Linear, scheduler.Type);
        Assert.Equal((40.0, 800.0), (scheduler.WarmupEpochs, scheduler.DecayEndEpoch));
        Assert.Equal((2e-4, 2e-5), (scheduler.BaseLr, scheduler.FinalLr));
        Assert.True(scheduler.WarmupFromZero);
    }

    [Fact]
    public void LegacyCfgScaleAndPerProcessBatchAreKept()
    {
        var config = RaeConfig.Parse("""
            guidance:
              scale: 1.0
            training:
              batch_size: 32
              grad_accum_steps: 4
              cfg_scale: 1.8
              base_lr: 1.0e-4
            """, "legacy.yaml");

        Assert.Equal(1.8, config.Training!.CfgScale);
        Assert.Equal(1.8, config.TrainingGuidanceScale);
        Assert.Null(config.Training.GlobalBatchSize);
        Assert.Equal(32 * 8 * 4, config.Training.ResolveGlobalBatchSize(worldSize: 8));
        Assert.Equal(1e-4, config.Training.Optimizer.Lr);
        Assert.Equal(1e-4, config.Training.Scheduler!.BaseLr);
        Assert.Equal(1400.0, config.Training.Scheduler.DecayEndEpoch);
    }

    [Fact]
    public void ReadsTheStage1TrainingConfigWithItsGanSection()
    {
        var config = RaeConfig.Parse(ReferenceConfigTexts.Stage1Training, "DINOv2-B_decXL.yaml");

        Assert.Equal(0.8, config.Stage1!.Params.NoiseTau);
        Assert.Null(config.Stage1.Params.PretrainedDecoderPath);
        Assert.Null(config.Stage1.Params.NormalizationStatPath);
        var training = config.Training!;
        Assert.Null(training.ClipGrad);
        Assert.Equal((16, 512, 0.9978, 1), (training.Epochs, training.GlobalBatchSize, training.EmaDecay, training.CheckpointInterval));
        Assert.Equal(LrScheduleType.Cosine, training.Scheduler!.Type);
        Assert.True(training.Scheduler.WarmupFromZero);
        var gan = config.Gan!;
        Assert.Equal(("S_8", 9, "bn", true), (gan.Disc.Arch.Recipe, gan.Disc.Arch.Ks, gan.Disc.Arch.NormType, gan.Disc.Arch.UsingSpecNorm));
        Assert.Equal(new[] { 2, 5, 8, 11 }, gan.Disc.Arch.KeyDepths);
        Assert.Equal("models/discs/dino_vit_small_patch8_224.pth", gan.Disc.Arch.DinoCkptPath);
        Assert.Equal(LrScheduleType.Cosine, gan.Disc.Scheduler!.Type);
        Assert.Equal((1.0, 0.0), (gan.Disc.Augment.Prob, gan.Disc.Augment.Cutout));
        Assert.Equal(("hinge", "vanilla", 0.75, 1.0), (gan.Loss.DiscLoss, gan.Loss.GenLoss, gan.Loss.DiscWeight, gan.Loss.PerceptualWeight));
        Assert.Equal((8.0, 6.0, 0.0, 10000.0, 1), (gan.Loss.DiscStart, gan.Loss.DiscUpdStart, gan.Loss.LpipsStart, gan.Loss.MaxDWeight, gan.Loss.DiscUpdates));
    }

    [Fact]
    public void FillsReferenceDefaultsForMissingSectionsAndKeys()
    {
        var config = RaeConfig.Parse("stage_2:\n  target: DiTwDDTHead\n", "minimal.yaml");

        var model = Assert.IsType<DiTwDDTHeadParams>(config.Stage2!.Params);
        Assert.Equal(new EncoderDecoderPair(1152, 2048), model.HiddenSize);
        Assert.Equal(new[] { 768, 16, 16 }, config.Misc.LatentSize);
        Assert.Equal(1000, config.Misc.NullLabel);
        Assert.Equal(196608L, config.Misc.TimeDistShiftDim);
        Assert.Equal(("dopri5", 50, false), (config.Sampler.SamplingMethod, config.Sampler.NumSteps, config.Sampler.Reverse));
        Assert.Equal(("Linear", "velocity"), (config.Transport.PathType, config.Transport.Prediction));
        Assert.Equal(GuidanceMethod.Cfg, config.Guidance.Method);
        Assert.Null(config.Stage1);
        Assert.Null(config.Training);
    }

    [Fact]
    public void MiscDerivesTheShiftFromTheLatentWhenNoDimensionIsGiven()
    {
        var config = RaeConfig.Parse("misc:\n  latent_size: [768, 32, 32]\n  num_classes: 10\n  null_label: 3\n", "misc.yaml");

        Assert.Equal(786432L, config.Misc.TimeDistShiftDim);
        Assert.Equal(Math.Sqrt(192), config.TimeDistShift, 12);
        Assert.Equal(3, config.Misc.NullLabel);
    }

    [Fact]
    public void ReadsEveryStage1EncoderFamily()
    {
        var mae = RaeConfig.Parse("""
            stage_1:
              target: stage1.RAE
              params:
                encoder_cls: MAEwNorm
                encoder_input_size: 256
                encoder_params: {model_name: facebook/vit-mae-base}
            """, "MAE.yaml").Stage1!.Params;
        var siglip = RaeConfig.Parse("""
            stage_1:
              target: stage1.RAE
              params:
                encoder_cls: SigLIP2wNorm
                encoder_input_size: 256
                encoder_params: {model_name: google/siglip2-base-patch16-256, num_tokens: 256}
            """, "SigLIP2.yaml").Stage1!.Params;
        var resnet = RaeConfig.Parse("""
            stage_1:
              target: stage1.RAE
              params:
                encoder_cls: ResNet18
                encoder_input_size: 224
                encoder_params: {model_path: models/resnet18.onnx, normalize: false}
            """, "resnet.yaml").Stage1!.Params;

        Assert.Equal(("facebook/vit-mae-base", 16), (mae.EncoderParams.ModelName, mae.TokenGridSize));
        Assert.Equal(("google/siglip2-base-patch16-256", 256), (siglip.EncoderParams.ModelName, siglip.EncoderParams.NumTokens));
        Assert.Equal(("models/resnet18.onnx", false, 7), (resnet.EncoderParams.ModelPath, resnet.EncoderParams.Normalize, resnet.TokenGridSize));
    }

    [Fact]
    public void ReadsLightningDiTParamsAndSdeSamplerParams()
    {
        var config = RaeConfig.Parse("""
            stage_2:
              target: stage2.models.lightningDiT.LightningDiT
              params: {input_size: 8, patch_size: 2, in_channels: 8, hidden_size: 64, depth: 2, num_heads: 4, num_classes: 10, use_qknorm: true, learn_sigma: false}
            sampler:
              mode: sde
              params: {sampling_method: heun, diffusion_form: sigma, last_step: null, num_steps: 100}
            misc: {latent_size: [8, 8, 8], num_classes: 10, time_dist_shift_base: 512}
            """, "lightning.yaml");

        var model = Assert.IsType<LightningDiTParams>(config.Stage2!.Params);
        Assert.Equal((2, 64, 2, 4, true), (model.PatchSize, model.HiddenSize, model.Depth, model.NumHeads, model.UseQkNorm));
        Assert.Equal((SamplerMode.SDE, "heun", "sigma", 100), (config.Sampler.Mode, config.Sampler.SamplingMethod, config.Sampler.DiffusionForm, config.Sampler.NumSteps));
        Assert.Null(config.Sampler.LastStep);
        Assert.Equal(0.04, config.Sampler.LastStepSize);
        Assert.Equal(1.0, config.TimeDistShift);
    }
}
