// cairn-jp: the CLI's JMESPath engine (base/jmespath.h) on its own, for the differential test
// against python3-jmespath and for trying a --query out.
//   cairn-jp EXPRESSION < doc.json       prints the result as JSON (exit 1 and the error on
//   failure) cairn-jp --lines < cases.jsonl       each line {"expression": E, "data": D} ->
//   {"result": R} or
//                                        {"error": KIND, "message": M}
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "base/jmespath.h"

using cairn::jmespath::Json;

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--lines") {
    std::string line;
    while (std::getline(std::cin, line)) {
      Json c = Json::parse(line, nullptr, false);
      Json out;
      if (c.is_discarded() || !c.contains("expression")) {
        out = {{"error", "bad-case"}};
      } else {
        Json r;
        cairn::jmespath::Error e;
        if (cairn::jmespath::Search(c["expression"].get<std::string>(), c.value("data", Json()), &r,
                                    &e))
          out = {{"result", r}};
        else
          out = {{"error", e.kind}, {"message", e.message}};
      }
      std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: cairn-jp EXPRESSION < doc.json | cairn-jp --lines < cases.jsonl\n");
    return 2;
  }
  std::string doc((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  Json data = Json::parse(doc, nullptr, false);
  if (data.is_discarded()) {
    fprintf(stderr, "error: the input is not JSON\n");
    return 2;
  }
  Json r;
  cairn::jmespath::Error e;
  if (!cairn::jmespath::Search(argv[1], data, &r, &e)) {
    fprintf(stderr, "error: %s: %s\n", e.kind.c_str(), e.message.c_str());
    return 1;
  }
  std::cout << r.dump(2) << "\n";
  return 0;
}
