// The LM configuration (ssm/config.h): the official config.json schema in and out, strict errors that
// name the key, and the parameter counts of spec §5 for the models it builds.
#include <gtest/gtest.h>

#include <filesystem>

#include "ssm/lm.h"

using namespace ssm;
namespace fs = std::filesystem;

namespace {

std::string default_1m_json(const std::string& extra_ssm_cfg = "", const std::string& extra_root = "") {
  return R"({"d_model": 160, "n_layer": 5, "vocab_size": 256, )" + extra_root +
         R"("ssm_cfg": {"layer": "Mamba3", "d_state": 16, "headdim": 16, "is_mimo": true, "mimo_rank": 2)" +
         extra_ssm_cfg + "}}";
}

std::string error_of(const std::string& text) {
  try {
    LMConfig::from_json(text, "my.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(SsmConfig, ReadsTheDefaultModelAndItsDerivedSizes) {
  const LMConfig c = LMConfig::from_json(default_1m_json());
  EXPECT_EQ(c.d_model, 160);
  EXPECT_EQ(c.mixer.kind, MixerKind::Mamba3);
  EXPECT_EQ(c.mixer.rank(), 2);
  EXPECT_EQ(c.mixer.num_rope_angles(), 4);
  EXPECT_EQ(c.mixer.expand, 2);          // official defaults fill the rest
  EXPECT_EQ(c.mixer.chunk_size, 64);
  EXPECT_DOUBLE_EQ(c.mixer.A_floor, 1e-4);
  EXPECT_EQ(c.padded_vocab(), 256);
  EXPECT_EQ(LMConfig::from_json(R"({"vocab_size": 50, "ssm_cfg": {"layer": "Mamba2"}})").padded_vocab(), 56);
}

TEST(SsmConfig, RoundTripsThroughJson) {
  for (const std::string& text :
       {default_1m_json(), std::string(R"({"d_model": 32, "n_layer": 2, "vocab_size": 50, "d_intermediate": 64,
          "ssm_cfg": {"layer": "Mamba2", "d_state": 8, "headdim": 8, "ngroups": 2, "A_init_range": [2, 4]}})")}) {
    const LMConfig a = LMConfig::from_json(text);
    const LMConfig b = LMConfig::from_json(a.to_json());
    EXPECT_EQ(a.to_json(), b.to_json());
    EXPECT_EQ(b.mixer.ngroups, a.mixer.ngroups);
    EXPECT_EQ(b.d_intermediate, a.d_intermediate);
  }
}

TEST(SsmConfig, ReadsEveryParityCaseConfig) {
  const fs::path parity = fs::path(SSM_SHARED_DIR) / "parity";
  if (!fs::is_directory(parity)) GTEST_SKIP() << "no parity folder at " << parity;
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(parity))
    if (fs::is_regular_file(entry.path() / "config.json")) {
      SCOPED_TRACE(entry.path().string());
      EXPECT_NO_THROW(LMConfig::load((entry.path() / "config.json").string()));
      ++cases;
    }
  EXPECT_GE(cases, 4);
}

TEST(SsmConfig, ErrorsNameTheFileAndTheKey) {
  EXPECT_NE(error_of(default_1m_json(R"(, "d_stat": 4)")).find("unknown key \"d_stat\""), std::string::npos);
  EXPECT_NE(error_of(default_1m_json("", R"("colour": 1, )")).find("unknown key \"colour\""), std::string::npos);
  EXPECT_NE(error_of(default_1m_json(R"(, "headdim": "16")")).find("\"headdim\": expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of(default_1m_json(R"(, "is_mimo": 1)")).find("\"is_mimo\""), std::string::npos);
  EXPECT_NE(error_of(R"({"ssm_cfg": {}})").find("\"Mamba2\" or \"Mamba3\""), std::string::npos);  // Mamba1 default
  EXPECT_NE(error_of(default_1m_json("", R"("tie_embeddings": false, )")).find("tie_embeddings"), std::string::npos);
  EXPECT_NE(error_of(default_1m_json(R"(, "headdim": 7)")).find("headdim 7 does not divide"), std::string::npos);
  EXPECT_NE(error_of(default_1m_json(R"(, "rope_fraction": 0.25)")).find("rope_fraction"), std::string::npos);
  EXPECT_NE(error_of("{\"d_model\": ").find("my.json: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(default_1m_json()).find("(no error)"), std::string::npos);
  EXPECT_THROW(LMConfig::load("/nonexistent/config.json"), Error);
}

// spec §5: 928,680 (Mamba-3 MIMO), 890,280 (SISO), 862,220 (Mamba-2) unique parameters
TEST(SsmConfig, ParameterCountsMatchTheSpec) {
  Generator gen(1);
  LMConfig mimo = LMConfig::from_json(default_1m_json());
  EXPECT_EQ(MambaLM(mimo, gen).num_parameters(), 928680);
  LMConfig siso = mimo;
  siso.mixer.is_mimo = false;
  EXPECT_EQ(MambaLM(siso, gen).num_parameters(), 890280);
  LMConfig mamba2 = mimo;
  mamba2.mixer = MixerConfig::mamba2_defaults();
  mamba2.mixer.d_state = 16;
  mamba2.mixer.headdim = 16;
  EXPECT_EQ(MambaLM(mamba2, gen).num_parameters(), 862220);
}

// spec §4.4: the official keys, in the official order
TEST(SsmConfig, StateDictKeysAreTheOfficialOnes) {
  Generator gen(2);
  LMConfig c = LMConfig::from_json(default_1m_json());
  c.n_layer = 2;
  std::vector<std::string> keys;
  for (const auto& [key, _] : MambaLM(c, gen).named_parameters()) keys.push_back(key);
  std::vector<std::string> want = {"backbone.embedding.weight"};
  for (const std::string layer : {"0", "1"})
    for (const std::string leaf : {"norm.weight", "mixer.dt_bias", "mixer.B_bias", "mixer.C_bias", "mixer.mimo_x",
                                   "mixer.mimo_z", "mixer.mimo_o", "mixer.D", "mixer.in_proj.weight",
                                   "mixer.B_norm.weight", "mixer.C_norm.weight", "mixer.out_proj.weight"})
      want.push_back("backbone.layers." + layer + "." + leaf);
  want.push_back("backbone.norm_f.weight");
  EXPECT_EQ(keys, want);
}
