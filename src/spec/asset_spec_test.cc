#include "spec/asset_spec.h"

#include <gtest/gtest.h>

namespace cairn::spec {
namespace {

TEST(AssetRef, EveryFormAzureMlWrites) {
  auto r = ParseAssetRef("azureml:iris:3");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "iris");
  EXPECT_EQ(r->version, "3");
  r = ParseAssetRef("azureml:iris@latest");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "iris");
  EXPECT_EQ(r->version, "");
  r = ParseAssetRef(
      "azureml:/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/"
      "workspaces/w/data/iris/versions/7");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "iris");
  EXPECT_EQ(r->version, "7");
  r = ParseAssetRef("azureml://registries/azureml/environments/sklearn-1.5/labels/latest");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "azureml");
  EXPECT_EQ(r->name, "sklearn-1.5");
  EXPECT_EQ(r->version, "");
  r = ParseAssetRef("azureml://registries/azureml/environments/sklearn-1.5/versions/2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, "2");
  EXPECT_FALSE(ParseAssetRef("azureml:iris:"));
  EXPECT_FALSE(ParseAssetRef("iris:1"));
  EXPECT_FALSE(ParseAssetRef("azureml://registries/azureml/environments/x"));
}

TEST(AssetFile, PreviewFormsAndLocatedErrors) {
  Diagnostics d;
  auto a = ParseAssetText("data", "name: t\npaths:\n  - file: https://example.com/t.csv\n", "d.yml",
                          "/tmp", {}, d);
  ASSERT_TRUE(a) << d.ToString();
  EXPECT_EQ(a->type, "uri_file");
  EXPECT_EQ(a->path, "https://example.com/t.csv");

  Diagnostics e;
  EXPECT_FALSE(
      ParseAssetText("model", "name: m\ntype: onnx\npath: https://x/m\n", "m.yml", "/tmp", {}, e));
  EXPECT_EQ(e.ToString(),
            "m.yml:1:1: error: type: expected custom_model, mlflow_model or triton_model, got "
            "\"onnx\"\n");

  Diagnostics f;
  EXPECT_FALSE(
      ParseAssetText("data", "name: bad name\npath: https://x/y\n", "n.yml", "/tmp", {}, f));
  EXPECT_NE(f.ToString().find("name: \"bad name\" must start with a letter or digit"),
            std::string::npos);

  Diagnostics g;
  auto env = ParseAssetText("environment", "name: e\nimage: python:3.11\n", "e.yml", "/tmp",
                            {"version=4"}, g);
  ASSERT_TRUE(env) << g.ToString();
  EXPECT_EQ(env->environment.image, "python:3.11");
  EXPECT_EQ(env->version, "4");
}

}  // namespace
}  // namespace cairn::spec
