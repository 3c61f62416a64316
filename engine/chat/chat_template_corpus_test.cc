// The corpus check against jinja2: tools/chat_template_corpus.py renders every
// case with the jinja2 package, writes the JSON file RELAYOUT_CHAT_CORPUS
// names, and runs this test on it (it is DISABLED_ so a plain run of
// engine_tests, which has no corpus, leaves it out).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/chat/chat_template.h"
#include "engine/text/json.h"

namespace relayout {
namespace {

std::string Excerpt(const std::string& s, size_t at) {
  const size_t from = at > 40 ? at - 40 : 0;
  return s.substr(from, 80);
}

TEST(ChatTemplateCorpusTest, DISABLED_EveryCaseMatchesJinja2) {
  const char* path = std::getenv("RELAYOUT_CHAT_CORPUS");
  ASSERT_NE(path, nullptr) << "run through tools/chat_template_corpus.py";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  Result<JsonValue> corpus = ParseJson(text.str());
  ASSERT_TRUE(corpus.ok()) << corpus.status();

  std::vector<std::vector<ChatMessage>> lists;
  std::vector<std::string> list_names;
  for (const JsonValue& list : corpus->Find("message_lists")->as_array()) {
    list_names.push_back(list.Find("name")->as_string());
    std::vector<ChatMessage> messages;
    for (const JsonValue& m : list.Find("messages")->as_array()) {
      messages.push_back({m.Find("role")->as_string(), m.Find("content")->as_string()});
    }
    lists.push_back(std::move(messages));
  }

  std::vector<std::shared_ptr<const ChatTemplate>> compiled;
  std::vector<std::string> names;
  int compile_failures = 0;
  for (const JsonValue& t : corpus->Find("templates")->as_array()) {
    names.push_back(t.Find("name")->as_string());
    Result<std::shared_ptr<const ChatTemplate>> c = ChatTemplate::Compile(
        t.Find("source")->as_string(), t.Find("bos")->as_string(), t.Find("eos")->as_string());
    if (const JsonValue* error = t.Find("compile_error")) {
      EXPECT_FALSE(c.ok()) << names.back() << ": jinja2 refuses it (" << error->as_string()
                           << ") but it compiled";
      compiled.push_back(nullptr);
      continue;
    }
    if (!c.ok()) {
      ADD_FAILURE() << names.back() << ": " << c.status();
      ++compile_failures;
      compiled.push_back(nullptr);
      continue;
    }
    compiled.push_back(*c);
  }

  int cases = 0, failures = 0;
  for (const JsonValue& c : corpus->Find("cases")->as_array()) {
    const size_t ti = static_cast<size_t>(*c.Find("template")->as_int64());
    const size_t mi = static_cast<size_t>(*c.Find("messages")->as_int64());
    const bool agp = c.Find("add_generation_prompt")->as_bool();
    if (compiled[ti] == nullptr) continue;
    ++cases;
    Result<std::string> got = compiled[ti]->Apply(lists[mi], agp);
    const std::string where =
        names[ti] + " x " + list_names[mi] + (agp ? " (generation prompt)" : "");
    if (const JsonValue* error = c.Find("error")) {
      if (got.ok()) {
        ++failures;
        ADD_FAILURE() << where << ": jinja2 fails (" << error->as_string() << ") but it rendered:\n"
                      << *got;
      }
      continue;
    }
    const std::string& expected = c.Find("expected")->as_string();
    if (!got.ok()) {
      ++failures;
      ADD_FAILURE() << where << ": " << got.status();
      continue;
    }
    if (*got != expected) {
      ++failures;
      size_t at = 0;
      while (at < got->size() && at < expected.size() && (*got)[at] == expected[at]) ++at;
      ADD_FAILURE() << where << ": differs at byte " << at << "\n  expected: ["
                    << Excerpt(expected, at) << "]\n  got:      [" << Excerpt(*got, at) << "]";
    }
  }
  std::printf(
      "chat template corpus: %zu templates, %zu message lists, %d cases rendered, %d "
      "failures, %d templates failed to compile\n",
      names.size(), lists.size(), cases, failures, compile_failures);
  EXPECT_GT(cases, 0);
}

}  // namespace
}  // namespace relayout
