namespace RAE.Models.Tests.Config;

/// <summary>YAML texts in the reference's schema, written from the spec (§1.2, §4.1, §7.1, §11), to parse in tests.</summary>
internal static class ReferenceConfigTexts
{
    public const string Dinov2Stage1 = """
        stage_1:
          target: stage1.RAE
          params:
            encoder_cls: 'Dinov2withNorm'
            encoder_config_path: 'facebook/dinov2-with-registers-base'
            encoder_input_size: 224
            encoder_params:
              dinov2_path: 'facebook/dinov2-with-registers-base'
              normalize: true
            decoder_config_path: 'configs/decoder/ViTXL'
            pretrained_decoder_path: 'models/decoders/dinov2/wReg_base/ViTXL_n08/model.pt'
            noise_tau: 0.
            reshape_to_2d: True
            normalization_stat_path: 'models/stats/dinov2/wReg_base/imagenet1k/stat.pt'
        """;

    public const string DiTDHXLStage2 = """
        stage_2:
          target: stage2.models.DDT.DiTwDDTHead
          params:
            input_size: 16
            patch_size: 1
            in_channels: 768
            hidden_size: [1152, 2048]
            depth: [28, 2]
            num_heads: [16, 16]
            mlp_ratio: 4.0
            class_dropout_prob: 0.1
            num_classes: 1000
            use_qknorm: False
            use_swiglu: True
            use_rope: True
            use_rmsnorm: True
            wo_shift: False
            use_pos_embed: True
        """;

    public const string Stage2Rest = """
        transport:
          params:
            path_type: Linear
            prediction: velocity
            loss_weight: null
            time_dist_type: logit-normal_0_1
        sampler:
          mode: ODE
          params:
            sampling_method: euler
            num_steps: 50
            atol: 1e-6
            rtol: 1e-3
            reverse: False
        guidance:
          method: cfg
          scale: 1.0
          t_min: 0.0
          t_max: 1.0
        misc:
          latent_size: [768, 16, 16]
          num_classes: 1000
          time_dist_shift_dim: 196608
          time_dist_shift_base: 4096
        eval:
          eval_interval: 25000
          eval_model: True
          data_path: data/imagenet/val/
          reference_npz_path: data/imagenet/VIRTUAL_imagenet256_labeled.npz
        training:
          epochs: 1400
          global_batch_size: 1024
          grad_accum_steps: 1
          ema_decay: 0.9995
          num_workers: 16
          log_interval: 100
          checkpoint_interval: 10
          sample_every: 10000
          clip_grad: 1.0
          global_seed: 42
          optimizer:
            lr: 2e-4
            betas: [0.9, 0.95]
            weight_decay: 0.0
          scheduler:
            type: linear
            warmup_epochs: 40
            decay_end_epoch: 800
            base_lr: 2e-4
            final_lr: 2e-5
            warmup_from_zero: False
        """;

    /// <summary>configs/training/ImageNet256/DiTDH-XL_DINOv2-B.yaml (main, spec §7.1).</summary>
    public static readonly string Stage2TrainingXL = Dinov2Stage1 + "\n" + DiTDHXLStage2 + "\n" + Stage2Rest;

    /// <summary>ImageNet256/DiTDHXL-DINOv2-B_AG.yaml (spec §1.2): dashed t-min/t-max, autoguidance 1.42 by DiT^DH-S.</summary>
    public static readonly string SamplingAutoguidance = Dinov2Stage1 + "\n" + DiTDHXLStage2.Replace(
        "  target: stage2.models.DDT.DiTwDDTHead\n", "  target: stage2.models.DDT.DiTwDDTHead\n  ckpt: models/DiTs/Dinov2/wReg_base/ImageNet256/DiTDH-XL/stage2_model.pt\n") + """

        transport:
          params:
            path_type: Linear
            prediction: velocity
            loss_weight: null
            time_dist_type: uniform
        sampler:
          mode: ODE
          params:
            sampling_method: euler
            num_steps: 50
            atol: 1e-6
            rtol: 1e-3
            reverse: False
        guidance:
          method: autoguidance
          scale: 1.42
          t-min: 0.0
          t-max: 1.0
          guidance_model:
            target: stage2.models.DDT.DiTwDDTHead
            ckpt: models/DiTs/Dinov2/wReg_base/ImageNet256/DiTDH-S_ep14/stage2_model.pt
            params:
              input_size: 16
              patch_size: 1
              in_channels: 768
              hidden_size: [384, 2048]
              depth: [12, 2]
              num_heads: [6, 16]
              mlp_ratio: 4.0
              class_dropout_prob: 0.1
              num_classes: 1000
              use_qknorm: False
              use_swiglu: True
              use_rope: True
              use_rmsnorm: True
              wo_shift: False
              use_pos_embed: True
        misc:
          latent_size: [768, 16, 16]
          num_classes: 1000
          time_dist_shift_dim: 196608
          time_dist_shift_base: 4096
        """;

    /// <summary>The stale ImageNet512 training file (spec §7.1): 448-px encoder, 16x16 latent, legacy flat training keys.</summary>
    public static readonly string LegacyTraining512 = Dinov2Stage1
        .Replace("encoder_input_size: 224", "encoder_input_size: 448")
        .Replace("ViTXL_n08/model.pt", "ViTXL_n08_i512/model.pt")
        .Replace("imagenet1k/stat.pt", "imagenet1k_512/stat.pt") + "\n" + DiTDHXLStage2 + """

        transport:
          params:
            path_type: Linear
            prediction: velocity
            loss_weight: null
            time_dist_type: uniform
        misc:
          latent_size: [768, 16, 16]
          num_classes: 1000
          time_dist_shift_dim: 196608
          time_dist_shift_base: 4096
        training:
          global_seed: 0
          epochs: 1400
          global_batch_size: 1024
          ema_decay: 0.9995
          num_workers: 4
          log_every: 100
          ckpt_every: 5000
          sample_every: 10000
          base_lr: 0.0002
          final_lr: 0.00002
          beta: [0.9, 0.95]
          wd: 0.0
          schedule_type: 'linear'
          decay_start_epoch: 40
          decay_end_epoch: 800
          clip_grad: 1.0
        """;

    /// <summary>configs/stage1/training/DINOv2-B_decXL.yaml (spec §4.1).</summary>
    public const string Stage1Training = """
        stage_1:
          target: stage1.RAE
          params:
            encoder_cls: 'Dinov2withNorm'
            encoder_config_path: 'facebook/dinov2-with-registers-base'
            encoder_input_size: 224
            encoder_params:
              dinov2_path: 'facebook/dinov2-with-registers-base'
              normalize: true
            decoder_config_path: 'configs/decoder/ViTXL'
            noise_tau: 0.8
            reshape_to_2d: true
        training:
          epochs: 16
          ema_decay: 0.9978
          global_batch_size: 512
          num_workers: 8
          clip_grad: 0.0
          log_interval: 100
          checkpoint_interval: 1
          sample_every: 2500
          optimizer:
            lr: 2.0e-4
            betas: [0.9, 0.95]
            weight_decay: 0.0
          scheduler:
            type: cosine
            warmup_epochs: 1
            decay_end_epoch: 16
            base_lr: 2.0e-4
            final_lr: 2.0e-5
            warmup_from_zero: true
        gan:
          disc:
            arch:
              dino_ckpt_path: 'models/discs/dino_vit_small_patch8_224.pth'
              ks: 9
              norm_type: 'bn'
              using_spec_norm: true
              recipe: 'S_8'
            optimizer:
              lr: 2.0e-4
              betas: [0.9, 0.95]
              weight_decay: 0.0
            scheduler:
              type: cosine
              warmup_epochs: 1
              decay_end_epoch: 16
              base_lr: 2.0e-4
              final_lr: 2.0e-5
              warmup_from_zero: true
            augment:
              prob: 1.0
              cutout: 0.0
          loss:
            disc_loss: hinge
            gen_loss: vanilla
            disc_weight: 0.75
            perceptual_weight: 1.0
            disc_start: 8
            disc_upd_start: 6
            lpips_start: 0
            max_d_weight: 10000.0
            disc_updates: 1
        """;
}
